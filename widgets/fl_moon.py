"""MOON panel: accuracy and the model-contrastive loss per round."""
import numpy as np

from ._fl_horizontal import *  # noqa: F401,F403
from ._fl_horizontal import code_view, federated_digits, kwargs_text, plot_label_counts
from .base import Panel
from .params import ChoiceParam, FloatParam, IntParam
from .registry import register


def run_moon(num_clients=4, num_communication=5, local_epoch=1, partition="dirichlet", alpha=0.5, mu=1.0, tau=0.5,
             lr=0.1, seed=0, progress=None):
    """MOON clients (representation: the CNN's ``conv`` features) with a FedAVG server."""
    dataloaders, (X_test, y_test), _, label_counts = federated_digits(num_clients, partition, alpha, seed)
    clients = [MOONClient(make_digits_model("cnn", seed=seed), user_id=i, lr=lr, mu=mu, tau=tau, rep_layer="conv")
               for i in range(num_clients)]
    server = FedAVGServer(clients, make_digits_model("cnn", seed=seed), lr=lr)
    optimizers = [torch.optim.SGD(c.parameters(), lr=lr, momentum=0.9) for c in clients]
    contrastive_loss = []

    def on_round(api, info):
        contrastive_loss.append(sum(c.last_contrastive_loss for c in clients) / len(clients))

    api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, dataloaders,
                    num_communication=num_communication, local_epoch=local_epoch,
                    validation_dataloader=(X_test, y_test), on_round=on_round, progress=progress)
    history = api.run()
    return history, contrastive_loss, label_counts


@register("FL", "Horizontal", "MOON")
class MOONPanel(Panel):
    title = "MOON — model-contrastive federated learning"
    description = (
        "Clients add μ·ℓ_con to their loss: a contrastive term that pulls each sample's representation "
        "towards the global model's and away from the client's previous local model's (temperature τ). "
        "It corrects the drift of local representations on non-IID data. In round 1 the previous model is the "
        "initial global model, so ℓ_con = log 2 with no gradient."
    )
    reference = "Li, He, Song. Model-Contrastive Federated Learning. CVPR 2021."
    params = (
        IntParam("num_clients", 4, min=2, max=10, label="clients"),
        IntParam("num_communication", 5, min=2, max=30, label="rounds"),
        IntParam("local_epoch", 1, min=1, max=5, label="local epochs"),
        ChoiceParam("partition", "dirichlet", options=("iid", "dirichlet"), label="data split"),
        FloatParam("alpha", 0.5, min=-2, max=1, step=0.1, log=True, label="Dirichlet α"),
        FloatParam("mu", 1.0, min=0.0, max=5.0, step=0.1, label="contrastive weight μ"),
        FloatParam("tau", 0.5, min=0.05, max=2.0, step=0.05, label="temperature τ"),
        FloatParam("lr", 0.1, min=0.01, max=0.5, step=0.01, label="client SGD lr"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("final_accuracy", "accuracy_per_round", "contrastive_loss_per_round")
    ARGS = ("num_clients", "num_communication", "local_epoch", "partition", "alpha", "mu", "tau", "lr", "seed")

    def compute(self, values, progress):
        history, con, label_counts = run_moon(**{k: values[k] for k in self.ARGS}, progress=progress)
        acc = [h["global_accuracy"] for h in history]
        result = {"final_accuracy": acc[-1], "accuracy_per_round": acc, "contrastive_loss_per_round": con}
        return result, {"label_counts": label_counts}

    def draw(self, fig, result, data):
        ax1, ax2, ax3 = fig.subplots(1, 3)
        r = np.arange(1, len(result["accuracy_per_round"]) + 1)
        ax1.plot(r, result["accuracy_per_round"], marker="o")
        ax1.set_ylim(0, 1)
        ax1.set_xlabel("round")
        ax1.set_ylabel("global test accuracy")
        ax2.plot(r, result["contrastive_loss_per_round"], marker="o", color="C3")
        ax2.set_xlabel("round")
        ax2.set_ylabel("mean ℓ_con")
        plot_label_counts(ax3, data["label_counts"])

    def code(self, v):
        call = f"""history, contrastive_loss_per_round, label_counts = run_moon({kwargs_text(v, self.ARGS)})
accuracy_per_round = [h["global_accuracy"] for h in history]
final_accuracy = accuracy_per_round[-1]
print(f"MOON accuracy {{final_accuracy:.3f}}, contrastive loss {{contrastive_loss_per_round[-1]:.3f}}")"""
        return code_view([federated_digits, run_moon], call)
