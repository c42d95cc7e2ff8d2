"""FedGEMS panel: a larger server model learns from small clients by selective knowledge fusion."""
import numpy as np

from ._fl_horizontal import *  # noqa: F401,F403
from ._fl_horizontal import code_view, federated_digits, heterogeneous_models, kwargs_text, plot_label_counts
from .base import Panel
from .params import ChoiceParam, FloatParam, IntParam
from .registry import register


def run_fedgems(num_clients=3, num_communication=5, public_size=300, partition="dirichlet", alpha=0.3,
                epsilon=0.75, server_channels=32, seed=0, progress=None):
    """Small heterogeneous clients and a larger CNN server; only public-data logits cross."""
    dataloaders, (X_test, y_test), (X_pub, y_pub), label_counts = federated_digits(
        num_clients, partition, alpha, seed, public_size=public_size)
    public_dataloader = DataLoader(TensorDataset(X_pub, y_pub), batch_size=32)
    clients = [FedGEMSClient(m, public_dataloader, output_dim=10, user_id=i)
               for i, m in enumerate(heterogeneous_models(num_clients, seed=seed))]
    server = FedGEMSServer(clients, make_digits_model("cnn", seed=seed, channels=server_channels),
                           output_dim=10, epsilon=epsilon)
    client_optimizers = [torch.optim.Adam(c.model.parameters(), lr=0.003) for c in clients]
    server_optimizer = torch.optim.Adam(server.server_model.parameters(), lr=0.003)
    api = FedGEMSAPI(server, clients, public_dataloader, dataloaders, client_optimizers=client_optimizers,
                     server_optimizer=server_optimizer, validation_dataloader=(X_test, y_test),
                     num_communication=num_communication, epoch_server_on_publicdataset=2, progress=progress)
    history = api.run()
    return history, label_counts


@register("FL", "Horizontal", "FedGEMS")
class FedGEMSPanel(Panel):
    title = "FedGEMS — a larger server model by selective knowledge fusion"
    description = (
        "Small clients upload their logits on a labeled public set. A larger server model checks its own "
        "predictions (self-evaluation, confidence ≥ ε): where it is unreliable it distils the entropy-weighted "
        "predictions of the clients that are right; it sends its knowledge back for the clients to distil."
    )
    reference = "Cheng et al. FedGEMS: Federated Learning of Larger Server Models via Selective Knowledge Fusion. arXiv:2110.11027, 2021."
    params = (
        IntParam("num_clients", 3, min=2, max=9, label="clients"),
        IntParam("num_communication", 5, min=1, max=20, label="rounds"),
        IntParam("public_size", 300, min=50, max=600, step=50, label="public samples"),
        ChoiceParam("partition", "dirichlet", options=("iid", "dirichlet"), label="private split"),
        FloatParam("alpha", 0.3, min=-2, max=1, step=0.1, log=True, label="Dirichlet α"),
        FloatParam("epsilon", 0.75, min=0.0, max=1.0, step=0.05, label="self-evaluation ε"),
        IntParam("server_channels", 32, min=8, max=64, step=8, label="server CNN channels"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("server_accuracy", "server_accuracy_per_round", "client_accuracy_final")
    ARGS = ("num_clients", "num_communication", "public_size", "partition", "alpha", "epsilon", "server_channels", "seed")

    def compute(self, values, progress):
        history, label_counts = run_fedgems(**{k: values[k] for k in self.ARGS}, progress=progress)
        result = {
            "server_accuracy": history[-1]["global_accuracy"],
            "server_accuracy_per_round": [h["global_accuracy"] for h in history],
            "client_accuracy_final": list(history[-1]["client_accuracies"]),
            "mean_client_accuracy": history[-1]["mean_client_accuracy"],
            "fused_samples_per_round": [h["fusion_stats"]["fused"] for h in history],
        }
        data = {
            "mean_clients": [h["mean_client_accuracy"] for h in history],
            "fusion": [h["fusion_stats"] for h in history],
            "label_counts": label_counts,
        }
        return result, data

    def draw(self, fig, result, data):
        ax1, ax2, ax3 = fig.subplots(1, 3)
        r = np.arange(1, len(result["server_accuracy_per_round"]) + 1)
        ax1.plot(r, result["server_accuracy_per_round"], marker="o", label="server (large)")
        ax1.plot(r, data["mean_clients"], marker="s", label="mean client (small)")
        ax1.set_ylim(0, 1)
        ax1.set_xlabel("round")
        ax1.set_ylabel("test accuracy")
        ax1.legend(fontsize=7)
        bottom = np.zeros(len(r))
        for key, color in (("self_knowledge", "C0"), ("fused", "C1"), ("label_only", "C7")):
            vals = np.array([f[key] for f in data["fusion"]])
            ax2.bar(r, vals, bottom=bottom, color=color, label=key.replace("_", " "))
            bottom += vals
        ax2.set_xlabel("round")
        ax2.set_ylabel("public samples")
        ax2.legend(fontsize=7)
        plot_label_counts(ax3, data["label_counts"])

    def code(self, v):
        call = f"""history, label_counts = run_fedgems({kwargs_text(v, self.ARGS)})
server_accuracy_per_round = [h["global_accuracy"] for h in history]
server_accuracy = server_accuracy_per_round[-1]
client_accuracy_final = history[-1]["client_accuracies"]
print(f"server {{server_accuracy:.3f}}, clients {{client_accuracy_final}}")"""
        return code_view([federated_digits, heterogeneous_models, run_fedgems], call)
