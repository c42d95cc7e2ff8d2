"""FedMD panel: clients of different architectures improve through consensus logits on public data."""
import numpy as np

from ._fl_horizontal import *  # noqa: F401,F403
from ._fl_horizontal import code_view, federated_digits, heterogeneous_models, kwargs_text, plot_label_counts
from .base import Panel
from .params import ChoiceParam, FloatParam, IntParam
from .registry import register


def run_fedmd(num_clients=3, num_communication=5, public_size=300, partition="dirichlet", alpha=0.1,
              consensus_epoch=2, lr=0.003, seed=0, progress=None):
    """FedMD with heterogeneous clients (two MLP widths and a CNN); only public-data logits are exchanged."""
    dataloaders, (X_test, y_test), (X_pub, y_pub), label_counts = federated_digits(
        num_clients, partition, alpha, seed, public_size=public_size)
    public_dataloader = DataLoader(TensorDataset(X_pub, y_pub), batch_size=32)
    clients = [FedMDClient(m, public_dataloader, output_dim=10, batch_size=32, user_id=i)
               for i, m in enumerate(heterogeneous_models(num_clients, seed=seed))]
    server = FedMDServer(clients, make_digits_model("cnn", seed=seed))
    optimizers = [torch.optim.Adam(c.model.parameters(), lr=lr) for c in clients]
    api = FedMDAPI(server, clients, public_dataloader, dataloaders, client_optimizers=optimizers,
                   validation_dataloader=(X_test, y_test), num_communication=num_communication,
                   transfer_epoch_public=5, transfer_epoch_private=2, consensus_epoch=consensus_epoch,
                   server_training_epoch=3, progress=progress)
    history = api.run()
    return history, api.transfer_scores["clients_score"], label_counts


@register("FL", "Horizontal", "FedMD")
class FedMDPanel(Panel):
    title = "FedMD — heterogeneous federated learning via model distillation"
    description = (
        "Clients with <i>different architectures</i> first learn from a labeled public set and their private data. "
        "Each round they upload their logits on the public set (never parameters); the server averages them into a "
        "consensus, every client trains towards it (<i>digest</i>) and then on its private data (<i>revisit</i>)."
    )
    reference = "Li & Wang. FedMD: Heterogenous Federated Learning via Model Distillation. NeurIPS 2019 workshop (arXiv:1910.03581)."
    params = (
        IntParam("num_clients", 3, min=2, max=9, label="clients"),
        IntParam("num_communication", 5, min=1, max=20, label="rounds"),
        IntParam("public_size", 300, min=50, max=600, step=50, label="public samples"),
        ChoiceParam("partition", "dirichlet", options=("iid", "dirichlet"), label="private split"),
        FloatParam("alpha", 0.1, min=-2, max=1, step=0.1, log=True, label="Dirichlet α"),
        IntParam("consensus_epoch", 2, min=1, max=5, label="digest epochs"),
        FloatParam("lr", 0.003, min=-4, max=-1, step=0.25, log=True, label="client Adam lr"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("client_accuracy_after_transfer", "client_accuracy_final", "bytes_uploaded_per_round")
    ARGS = ("num_clients", "num_communication", "public_size", "partition", "alpha", "consensus_epoch", "lr", "seed")

    def compute(self, values, progress):
        history, transfer, label_counts = run_fedmd(**{k: values[k] for k in self.ARGS}, progress=progress)
        final = history[-1]["client_accuracies"]
        result = {
            "client_accuracy_after_transfer": list(transfer),
            "client_accuracy_final": list(final),
            "mean_gain": float(np.mean(final) - np.mean(transfer)),
            "server_accuracy": history[-1]["global_accuracy"],
            "bytes_uploaded_per_round": history[-1]["bytes_uploaded"],
        }
        data = {"per_round": [h["client_accuracies"] for h in history], "label_counts": label_counts}
        return result, data

    def draw(self, fig, result, data):
        ax1, ax2 = fig.subplots(1, 2)
        acc = np.vstack([result["client_accuracy_after_transfer"], np.asarray(data["per_round"])])
        for i in range(acc.shape[1]):
            ax1.plot(np.arange(acc.shape[0]), acc[:, i], marker="o", label=f"client {i}")
        ax1.set_ylim(0, 1)
        ax1.set_xlabel("round (0 = after transfer learning)")
        ax1.set_ylabel("client test accuracy")
        ax1.legend(fontsize=7)
        plot_label_counts(ax2, data["label_counts"])

    def code(self, v):
        call = f"""history, client_accuracy_after_transfer, label_counts = run_fedmd({kwargs_text(v, self.ARGS)})
client_accuracy_final = history[-1]["client_accuracies"]
bytes_uploaded_per_round = history[-1]["bytes_uploaded"]
print("after transfer learning", client_accuracy_after_transfer, "after FedMD", client_accuracy_final)"""
        return code_view([federated_digits, heterogeneous_models, run_fedmd], call)
