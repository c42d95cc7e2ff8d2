"""FedEXP panel: FedEXP against FedAVG, and the extrapolated server step per round."""
import numpy as np

from ._fl_horizontal import *  # noqa: F401,F403
from ._fl_horizontal import code_view, federated_digits, kwargs_text, plot_label_counts, sub_progress
from .base import Panel
from .params import ChoiceParam, FloatParam, IntParam
from .registry import register


def run_fedexp(num_clients=8, num_communication=8, partition="dirichlet", alpha=0.5, lr=0.05, epsilon=0.001,
               model="mlp", seed=0, progress=None):
    """The same clients with a FedAVG server and with a FedEXP server (plain local SGD, one epoch)."""
    histories, eta = {}, []
    for k, protocol in enumerate(("FedEXP", "FedAVG")):
        dataloaders, (X_test, y_test), _, label_counts = federated_digits(num_clients, partition, alpha, seed)
        clients = [FedAVGClient(make_digits_model(model, seed=seed), user_id=i, lr=lr) for i in range(num_clients)]
        if protocol == "FedEXP":
            server = FedEXPServer(clients, make_digits_model(model, seed=seed), lr=lr, epsilon=epsilon)
        else:
            server = FedAVGServer(clients, make_digits_model(model, seed=seed), lr=lr)
        optimizers = [torch.optim.SGD(c.parameters(), lr=lr) for c in clients]
        api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, dataloaders,
                        num_communication=num_communication, local_epoch=1,
                        validation_dataloader=(X_test, y_test), progress=sub_progress(progress, k, 2))
        histories[protocol] = api.run()
        if protocol == "FedEXP":
            eta = list(server.eta_history)
    return histories, eta, label_counts


def rounds_to_reach(accuracies, target):
    """1-based round at which ``accuracies`` first reach ``target`` (None if never)."""
    return next((i + 1 for i, a in enumerate(accuracies) if a >= target), None)


@register("FL", "Horizontal", "FedEXP")
class FedEXPPanel(Panel):
    title = "FedEXP — federated averaging with extrapolation"
    description = (
        "The server moves the global model η_g times the mean client update, with "
        "η_g = max(1, Σ‖Δ_i‖² / (2M(‖Δ̄‖² + ε))): large when clients' updates disagree, 1 (FedAVG) when they "
        "agree. FedEXP's accuracy is that of the mean of its last two global models (its iterates oscillate). "
        "The panel runs FedEXP and FedAVG on the same clients."
    )
    reference = "Jhunjhunwala, Wang, Joshi. FedExP: Speeding Up Federated Averaging via Extrapolation. ICLR 2023."
    params = (
        IntParam("num_clients", 8, min=2, max=16, label="clients"),
        IntParam("num_communication", 8, min=1, max=30, label="rounds"),
        ChoiceParam("partition", "dirichlet", options=("iid", "dirichlet"), label="data split"),
        FloatParam("alpha", 0.5, min=-2, max=1, step=0.1, log=True, label="Dirichlet α"),
        FloatParam("lr", 0.05, min=0.01, max=0.5, step=0.01, label="client SGD lr"),
        FloatParam("epsilon", 0.001, min=-5, max=0, step=0.5, log=True, label="ε"),
        ChoiceParam("model", "mlp", options=("cnn", "mlp")),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("final_accuracy", "accuracy_per_round", "fedavg_accuracy_per_round", "eta_per_round")
    ARGS = ("num_clients", "num_communication", "partition", "alpha", "lr", "epsilon", "model", "seed")

    def compute(self, values, progress):
        histories, eta, label_counts = run_fedexp(**{k: values[k] for k in self.ARGS}, progress=progress)
        exp = [h["global_accuracy"] for h in histories["FedEXP"]]
        avg = [h["global_accuracy"] for h in histories["FedAVG"]]
        target = avg[-1]
        result = {
            "final_accuracy": exp[-1],
            "accuracy_per_round": exp,
            "fedavg_final_accuracy": avg[-1],
            "fedavg_accuracy_per_round": avg,
            "eta_per_round": eta,
            "rounds_to_fedavg_final": rounds_to_reach(exp, target),
            "fedavg_rounds_to_final": rounds_to_reach(avg, target),
        }
        return result, {"label_counts": label_counts}

    def draw(self, fig, result, data):
        ax1, ax2, ax3 = fig.subplots(1, 3)
        r = np.arange(1, len(result["accuracy_per_round"]) + 1)
        ax1.plot(r, result["accuracy_per_round"], marker="o", label="FedEXP")
        ax1.plot(r, result["fedavg_accuracy_per_round"], marker="s", label="FedAVG")
        ax1.set_ylim(0, 1)
        ax1.set_xlabel("round")
        ax1.set_ylabel("global test accuracy")
        ax1.legend(fontsize=7)
        ax2.bar(r, result["eta_per_round"], color="C2")
        ax2.axhline(1.0, color="k", lw=0.8, ls="--")
        ax2.set_xlabel("round")
        ax2.set_ylabel("server step η_g")
        plot_label_counts(ax3, data["label_counts"])

    def code(self, v):
        call = f"""histories, eta_per_round, label_counts = run_fedexp({kwargs_text(v, self.ARGS)})
accuracy_per_round = [h["global_accuracy"] for h in histories["FedEXP"]]
fedavg_accuracy_per_round = [h["global_accuracy"] for h in histories["FedAVG"]]
final_accuracy = accuracy_per_round[-1]
print(f"FedEXP {{final_accuracy:.3f}} vs FedAVG {{fedavg_accuracy_per_round[-1]:.3f}}; η_g per round {{eta_per_round}}")"""
        return code_view([federated_digits, run_fedexp], call)
