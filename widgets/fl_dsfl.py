"""DSFL panel: learning from unlabeled public data with entropy-reduced aggregation."""
import numpy as np

from ._fl_horizontal import *  # noqa: F401,F403
from ._fl_horizontal import code_view, federated_digits, heterogeneous_models, kwargs_text, plot_label_counts
from .base import Panel
from .params import ChoiceParam, FloatParam, IntParam
from .registry import register


def run_dsfl(num_clients=3, num_communication=5, public_size=300, partition="dirichlet", alpha=0.3,
             aggregation="ERA", era_temperature=0.1, seed=0, progress=None):
    """DSFL: clients share soft labels on *unlabeled* public inputs; the server aggregates them (ERA or SA)."""
    dataloaders, (X_test, y_test), (X_pub, _), label_counts = federated_digits(
        num_clients, partition, alpha, seed, public_size=public_size)
    public_dataloader = DataLoader(TensorDataset(X_pub), batch_size=32)  # inputs only, no labels
    clients = [DSFLClient(m, public_dataloader, output_dim=10, user_id=i)
               for i, m in enumerate(heterogeneous_models(num_clients, seed=seed))]
    server = DSFLServer(clients, make_digits_model("cnn", seed=seed), public_dataloader,
                        aggregation=aggregation, era_temperature=era_temperature)
    client_optimizers = [torch.optim.Adam(c.model.parameters(), lr=0.003) for c in clients]
    server_optimizer = torch.optim.Adam(server.server_model.parameters(), lr=0.003)
    api = DSFLAPI(server, clients, public_dataloader, dataloaders, num_communication=num_communication,
                  client_optimizers=client_optimizers, server_optimizer=server_optimizer,
                  validation_dataloader=(X_test, y_test), epoch_local_training=2,
                  epoch_global_distillation=3, progress=progress)
    history = api.run()
    return history, label_counts


@register("FL", "Horizontal", "DSFL")
class DSFLPanel(Panel):
    title = "DSFL — distillation-based semi-supervised FL"
    description = (
        "Clients train on private labeled data and upload their soft predictions on an <i>unlabeled</i> public "
        "set. Averaging non-IID clients' predictions gives flat labels, so the server sharpens the average "
        "(entropy-reduction aggregation, softmax(mean / T)), trains the global model on it and sends it back."
    )
    reference = "Itahara et al. Distillation-Based Semi-Supervised Federated Learning for Communication-Efficient Collaborative Training with Non-IID Private Data. IEEE TMC 2021."
    params = (
        IntParam("num_clients", 3, min=2, max=9, label="clients"),
        IntParam("num_communication", 5, min=1, max=20, label="rounds"),
        IntParam("public_size", 300, min=50, max=600, step=50, label="public samples"),
        ChoiceParam("partition", "dirichlet", options=("iid", "dirichlet"), label="private split"),
        FloatParam("alpha", 0.3, min=-2, max=1, step=0.1, log=True, label="Dirichlet α"),
        ChoiceParam("aggregation", "ERA", options=("ERA", "SA"), label="aggregation"),
        FloatParam("era_temperature", 0.1, min=0.01, max=1.0, step=0.01, label="ERA temperature T"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("final_accuracy", "accuracy_per_round", "entropy_after_per_round")
    ARGS = ("num_clients", "num_communication", "public_size", "partition", "alpha", "aggregation", "era_temperature", "seed")

    def compute(self, values, progress):
        history, label_counts = run_dsfl(**{k: values[k] for k in self.ARGS}, progress=progress)
        acc = [h["global_accuracy"] for h in history]
        result = {
            "final_accuracy": acc[-1],
            "accuracy_per_round": acc,
            "mean_client_accuracy": history[-1]["mean_client_accuracy"],
            "entropy_before_per_round": [h["entropy_before"] for h in history],
            "entropy_after_per_round": [h["entropy_after"] for h in history],
            "bytes_uploaded_per_round": history[-1]["bytes_uploaded"],
        }
        return result, {"label_counts": label_counts, "mean_clients": [h["mean_client_accuracy"] for h in history]}

    def draw(self, fig, result, data):
        ax1, ax2, ax3 = fig.subplots(1, 3)
        r = np.arange(1, len(result["accuracy_per_round"]) + 1)
        ax1.plot(r, result["accuracy_per_round"], marker="o", label="global model")
        ax1.plot(r, data["mean_clients"], marker="s", label="mean client")
        ax1.set_ylim(0, 1)
        ax1.set_xlabel("round")
        ax1.set_ylabel("test accuracy")
        ax1.legend(fontsize=7)
        ax2.plot(r, result["entropy_before_per_round"], marker="o", label="mean of clients")
        ax2.plot(r, result["entropy_after_per_round"], marker="s", label="aggregated")
        ax2.set_xlabel("round")
        ax2.set_ylabel("soft-label entropy (nats)")
        ax2.legend(fontsize=7)
        plot_label_counts(ax3, data["label_counts"])

    def code(self, v):
        call = f"""history, label_counts = run_dsfl({kwargs_text(v, self.ARGS)})
accuracy_per_round = [h["global_accuracy"] for h in history]
final_accuracy = accuracy_per_round[-1]
entropy_after_per_round = [h["entropy_after"] for h in history]
print(f"DSFL global accuracy {{final_accuracy:.3f}}")"""
        return code_view([federated_digits, heterogeneous_models, run_dsfl], call)
