"""FedKD panel: the shared mentee's accuracy and the adaptive distillation loss per round."""
import numpy as np

from ._fl_horizontal import *  # noqa: F401,F403
from ._fl_horizontal import code_view, federated_digits, kwargs_text, plot_label_counts
from .base import Panel
from .params import BoolParam, ChoiceParam, FloatParam, IntParam
from .registry import register


def run_fedkd(num_clients=4, num_communication=5, local_epoch=1, partition="iid", alpha=0.5, teacher="cnn",
              adaptive=True, lr=0.1, seed=0, progress=None):
    """FedKD: each client keeps a private mentor (``teacher``) and shares a small MLP mentee."""
    dataloaders, (X_test, y_test), _, label_counts = federated_digits(num_clients, partition, alpha, seed)
    clients = [
        FedKDClient(make_digits_model("mlp", seed=seed), teacher_model=make_digits_model(teacher, seed=seed + 1 + i),
                    user_id=i, student_lr=lr, adaptive_distillation_losses=adaptive)
        for i in range(num_clients)
    ]
    server = FedAVGServer(clients, make_digits_model("mlp", seed=seed), lr=lr)
    optimizers = [torch.optim.SGD(c.parameters(), lr=lr, momentum=0.9) for c in clients]
    distillation_loss, mentor_accuracy = [], []

    def on_round(api, info):
        distillation_loss.append(sum(c.last_distillation_loss for c in clients) / len(clients))
        with torch.no_grad():
            mentor_accuracy.append([float((c.teacher_model(X_test).argmax(1) == y_test).float().mean()) for c in clients])

    api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, dataloaders,
                    num_communication=num_communication, local_epoch=local_epoch,
                    validation_dataloader=(X_test, y_test), on_round=on_round, progress=progress)
    history = api.run()
    return history, distillation_loss, mentor_accuracy, label_counts


@register("FL", "Horizontal", "FedKD")
class FedKDPanel(Panel):
    title = "FedKD — federated learning by adaptive mutual distillation"
    description = (
        "Each client holds a large private <i>mentor</i> and a small shared <i>mentee</i>. They learn the task "
        "and from each other (KL terms scaled by 1/(task losses), so distillation counts more once both predict "
        "well); only the mentee is averaged by the server, which cuts communication."
    )
    reference = "Wu et al. Communication-efficient federated learning via knowledge distillation. Nature Communications 2022."
    params = (
        IntParam("num_clients", 4, min=2, max=10, label="clients"),
        IntParam("num_communication", 5, min=1, max=30, label="rounds"),
        IntParam("local_epoch", 1, min=1, max=5, label="local epochs"),
        ChoiceParam("partition", "iid", options=("iid", "dirichlet"), label="data split"),
        FloatParam("alpha", 0.5, min=-2, max=1, step=0.1, log=True, label="Dirichlet α"),
        ChoiceParam("teacher", "cnn", options=("cnn", "mlp"), label="mentor model"),
        BoolParam("adaptive", True, label="adaptive distillation"),
        FloatParam("lr", 0.1, min=0.01, max=0.5, step=0.01, label="mentee SGD lr"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("final_accuracy", "accuracy_per_round", "distillation_loss_per_round")
    ARGS = ("num_clients", "num_communication", "local_epoch", "partition", "alpha", "teacher", "adaptive", "lr", "seed")

    def compute(self, values, progress):
        history, kd, mentor, label_counts = run_fedkd(**{k: values[k] for k in self.ARGS}, progress=progress)
        acc = [h["global_accuracy"] for h in history]
        result = {
            "final_accuracy": acc[-1],
            "accuracy_per_round": acc,
            "distillation_loss_per_round": kd,
            "mean_mentor_accuracy": float(np.mean(mentor[-1])),
            "bytes_uploaded_per_round": history[-1]["bytes_uploaded"],
        }
        return result, {"mentor_accuracy": mentor, "label_counts": label_counts}

    def draw(self, fig, result, data):
        ax1, ax2, ax3 = fig.subplots(1, 3)
        r = np.arange(1, len(result["accuracy_per_round"]) + 1)
        ax1.plot(r, result["accuracy_per_round"], marker="o", label="global mentee")
        ax1.plot(r, np.mean(data["mentor_accuracy"], axis=1), marker="s", label="mean local mentor")
        ax1.set_ylim(0, 1)
        ax1.set_xlabel("round")
        ax1.set_ylabel("test accuracy")
        ax1.legend(fontsize=7)
        ax2.plot(r, result["distillation_loss_per_round"], marker="o", color="C2")
        ax2.set_xlabel("round")
        ax2.set_ylabel("mean distillation loss")
        plot_label_counts(ax3, data["label_counts"])

    def code(self, v):
        call = f"""history, distillation_loss_per_round, mentor_accuracy, label_counts = run_fedkd({kwargs_text(v, self.ARGS)})
accuracy_per_round = [h["global_accuracy"] for h in history]
final_accuracy = accuracy_per_round[-1]
print(f"FedKD mentee accuracy {{final_accuracy:.3f}}, distillation loss {{distillation_loss_per_round[-1]:.3f}}")"""
        return code_view([federated_digits, run_fedkd], call)
