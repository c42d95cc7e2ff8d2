"""FedProx panel: accuracy and client drift against FedAVG (FedProx with μ = 0) on the same split."""
import numpy as np

from ._fl_horizontal import *  # noqa: F401,F403  (the names the Code view imports)
from ._fl_horizontal import code_view, federated_digits, kwargs_text, plot_label_counts, sub_progress
from .base import Panel
from .params import ChoiceParam, FloatParam, IntParam
from .registry import register


def run_fedprox(num_clients=4, num_communication=5, local_epoch=1, partition="dirichlet", alpha=0.3, mu=0.1,
                lr=0.05, model="cnn", seed=0, progress=None):
    """FedProx and FedAVG (μ = 0) on the same clients; returns both histories."""
    histories = {}
    for k, (protocol, m) in enumerate((("FedProx", mu), ("FedAVG", 0.0))):
        dataloaders, (X_test, y_test), _, label_counts = federated_digits(num_clients, partition, alpha, seed)
        clients = [FedProxClient(make_digits_model(model, seed=seed), user_id=i, lr=lr, mu=m) for i in range(num_clients)]
        server = FedAVGServer(clients, make_digits_model(model, seed=seed), lr=lr)
        optimizers = [torch.optim.SGD(c.parameters(), lr=lr, momentum=0.9) for c in clients]
        api = FedProxAPI(server, clients, nn.CrossEntropyLoss(), optimizers, dataloaders,
                         num_communication=num_communication, local_epoch=local_epoch,
                         validation_dataloader=(X_test, y_test), progress=sub_progress(progress, k, 2))
        histories[protocol] = api.run()
    return histories, label_counts


@register("FL", "Horizontal", "FedProx")
class FedProxPanel(Panel):
    title = "FedProx — federated optimisation with a proximal term"
    description = (
        "Each client minimises its loss plus μ/2·‖w − w_global‖², which keeps local models close to the "
        "global one when clients' data differ (non-IID). The panel runs FedProx and FedAVG (μ = 0) on the "
        "same split and shows global accuracy and client drift ‖w_k − w_global‖ after local training."
    )
    reference = "Li et al. Federated Optimization in Heterogeneous Networks. MLSys 2020."
    params = (
        IntParam("num_clients", 4, min=2, max=10, label="clients"),
        IntParam("num_communication", 5, min=1, max=30, label="rounds"),
        IntParam("local_epoch", 1, min=1, max=5, label="local epochs"),
        ChoiceParam("partition", "dirichlet", options=("iid", "dirichlet"), label="data split"),
        FloatParam("alpha", 0.3, min=-2, max=1, step=0.1, log=True, label="Dirichlet α"),
        FloatParam("mu", 0.1, min=-3, max=1, step=0.1, log=True, label="proximal μ"),
        FloatParam("lr", 0.05, min=0.01, max=0.5, step=0.01, label="client SGD lr"),
        ChoiceParam("model", "cnn", options=("cnn", "mlp")),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("final_accuracy", "accuracy_per_round", "mean_client_drift", "fedavg_mean_client_drift")
    ARGS = ("num_clients", "num_communication", "local_epoch", "partition", "alpha", "mu", "lr", "model", "seed")

    def compute(self, values, progress):
        histories, label_counts = run_fedprox(**{k: values[k] for k in self.ARGS}, progress=progress)
        prox, avg = histories["FedProx"], histories["FedAVG"]
        result = {
            "final_accuracy": prox[-1]["global_accuracy"],
            "accuracy_per_round": [h["global_accuracy"] for h in prox],
            "mean_client_drift": float(np.mean([h["mean_client_drift"] for h in prox])),
            "fedavg_final_accuracy": avg[-1]["global_accuracy"],
            "fedavg_accuracy_per_round": [h["global_accuracy"] for h in avg],
            "fedavg_mean_client_drift": float(np.mean([h["mean_client_drift"] for h in avg])),
        }
        data = {
            "drift": [h["mean_client_drift"] for h in prox],
            "fedavg_drift": [h["mean_client_drift"] for h in avg],
            "label_counts": label_counts,
        }
        return result, data

    def draw(self, fig, result, data):
        ax1, ax2, ax3 = fig.subplots(1, 3)
        r = np.arange(1, len(result["accuracy_per_round"]) + 1)
        ax1.plot(r, result["accuracy_per_round"], marker="o", label="FedProx")
        ax1.plot(r, result["fedavg_accuracy_per_round"], marker="s", label="FedAVG")
        ax1.set_ylim(0, 1)
        ax1.set_xlabel("round")
        ax1.set_ylabel("global test accuracy")
        ax1.legend(fontsize=7)
        ax2.plot(r, data["drift"], marker="o", label="FedProx")
        ax2.plot(r, data["fedavg_drift"], marker="s", label="FedAVG")
        ax2.set_xlabel("round")
        ax2.set_ylabel("mean client drift ‖w_k − w‖")
        ax2.legend(fontsize=7)
        plot_label_counts(ax3, data["label_counts"])

    def code(self, v):
        call = f"""histories, label_counts = run_fedprox({kwargs_text(v, self.ARGS)})
prox, avg = histories["FedProx"], histories["FedAVG"]
accuracy_per_round = [h["global_accuracy"] for h in prox]
final_accuracy = accuracy_per_round[-1]
mean_client_drift = sum(h["mean_client_drift"] for h in prox) / len(prox)
fedavg_mean_client_drift = sum(h["mean_client_drift"] for h in avg) / len(avg)
print(f"FedProx accuracy {{final_accuracy:.3f}}, drift {{mean_client_drift:.3f}} (FedAVG {{fedavg_mean_client_drift:.3f}})")"""
        return code_view([federated_digits, run_fedprox], call)
