"""FLComparePanel: several horizontal FL protocols on the same clients, accuracy per round overlaid.

Not one algorithm of Table 1, so it has no gallery entry of its own; import it with
``from aijack_lab.widgets.fl_compare import FLComparePanel``.
"""
from dataclasses import dataclass

import ipywidgets as W
import numpy as np

from ._fl_horizontal import *  # noqa: F401,F403
from ._fl_horizontal import code_view, federated_digits, heterogeneous_models, kwargs_text, sub_progress
from .base import Panel
from .params import ChoiceParam, FloatParam, IntParam, Param

PROTOCOLS = ("FedAVG", "FedProx", "FedKD", "MOON", "FedEXP", "FedMD", "FedGEMS", "DSFL")


@dataclass
class MultiChoiceParam(Param):
    """A multi-select list; its value is a tuple of the chosen options (at least one)."""

    options: tuple = ()

    def make_widget(self):
        return W.SelectMultiple(value=tuple(self.default), options=list(self.options), description=self.text,
                                rows=min(len(self.options), 8), style={"description_width": "170px"},
                                layout=W.Layout(width="430px"))

    def validate(self, value):
        value = tuple(value)
        if not value:
            raise ValueError(f"{self.name} must name at least one option")
        bad = [v for v in value if v not in self.options]
        if bad:
            raise ValueError(f"{self.name}: unknown options {bad}; choose from {list(self.options)}")
        return value


def run_protocol(protocol, num_clients=4, num_communication=5, partition="dirichlet", alpha=0.5, seed=0,
                 progress=None):
    """Run one protocol on digits; returns (accuracy per round, bytes uploaded per round, what accuracy means).

    Parameter-averaging protocols train a CNN from the same start with local SGD; FedMD, FedGEMS and DSFL
    hold out 300 training samples as public data and use heterogeneous client models.
    """
    lr = 0.05
    criterion = nn.CrossEntropyLoss()
    if protocol in ("FedMD", "FedGEMS", "DSFL"):
        dataloaders, (X_test, y_test), (X_pub, y_pub), _ = federated_digits(num_clients, partition, alpha, seed, public_size=300)
        labeled = DataLoader(TensorDataset(X_pub, y_pub), batch_size=32)
        unlabeled = DataLoader(TensorDataset(X_pub), batch_size=32)
        models = heterogeneous_models(num_clients, seed=seed)
        if protocol == "FedMD":
            clients = [FedMDClient(m, labeled, output_dim=10, batch_size=32, user_id=i) for i, m in enumerate(models)]
            server = FedMDServer(clients, None)
            api = FedMDAPI(server, clients, labeled, dataloaders, client_optimizers=[torch.optim.Adam(m.parameters(), lr=0.003) for m in models],
                           validation_dataloader=(X_test, y_test), num_communication=num_communication,
                           transfer_epoch_public=5, transfer_epoch_private=2, consensus_epoch=2, progress=progress)
            history = api.run()
            return [h["mean_client_accuracy"] for h in history], [h["bytes_uploaded"] for h in history], "mean client"
        if protocol == "FedGEMS":
            clients = [FedGEMSClient(m, labeled, output_dim=10, user_id=i) for i, m in enumerate(models)]
            server = FedGEMSServer(clients, make_digits_model("cnn", seed=seed, channels=32), output_dim=10)
            api = FedGEMSAPI(server, clients, labeled, dataloaders, client_optimizers=[torch.optim.Adam(m.parameters(), lr=0.003) for m in models],
                             server_optimizer=torch.optim.Adam(server.server_model.parameters(), lr=0.003),
                             validation_dataloader=(X_test, y_test), num_communication=num_communication,
                             epoch_server_on_publicdataset=2, progress=progress)
        else:
            clients = [DSFLClient(m, unlabeled, output_dim=10, user_id=i) for i, m in enumerate(models)]
            server = DSFLServer(clients, make_digits_model("cnn", seed=seed), unlabeled, era_temperature=0.1)
            api = DSFLAPI(server, clients, unlabeled, dataloaders, num_communication=num_communication,
                          client_optimizers=[torch.optim.Adam(m.parameters(), lr=0.003) for m in models],
                          server_optimizer=torch.optim.Adam(server.server_model.parameters(), lr=0.003),
                          validation_dataloader=(X_test, y_test), epoch_local_training=2, epoch_global_distillation=3,
                          progress=progress)
        history = api.run()
        return [h["global_accuracy"] for h in history], [h["bytes_uploaded"] for h in history], "server model"
    dataloaders, (X_test, y_test), _, _ = federated_digits(num_clients, partition, alpha, seed)
    NN = lambda: make_digits_model("cnn", seed=seed)  # noqa: E731
    if protocol == "FedProx":
        clients = [FedProxClient(NN(), user_id=i, lr=lr, mu=0.1) for i in range(num_clients)]
    elif protocol == "FedKD":
        clients = [FedKDClient(NN(), user_id=i, student_lr=lr) for i in range(num_clients)]
    elif protocol == "MOON":
        clients = [MOONClient(NN(), user_id=i, lr=lr, rep_layer="conv") for i in range(num_clients)]
    else:
        clients = [FedAVGClient(NN(), user_id=i, lr=lr) for i in range(num_clients)]
    server = FedEXPServer(clients, NN(), lr=lr) if protocol == "FedEXP" else FedAVGServer(clients, NN(), lr=lr)
    optimizers = [torch.optim.SGD(c.parameters(), lr=lr, momentum=0.9) for c in clients]
    API = FedProxAPI if protocol == "FedProx" else FedAVGAPI
    api = API(server, clients, criterion, optimizers, dataloaders, num_communication=num_communication,
              validation_dataloader=(X_test, y_test), progress=progress)
    history = api.run()
    return [h["global_accuracy"] for h in history], [h["bytes_uploaded"] for h in history], "global model"


def run_compare(protocols=("FedAVG", "FedProx", "FedEXP"), num_clients=4, num_communication=5, partition="dirichlet",
                alpha=0.5, seed=0, progress=None):
    results = {}
    for k, protocol in enumerate(protocols):
        results[protocol] = run_protocol(protocol, num_clients, num_communication, partition, alpha, seed,
                                         progress=sub_progress(progress, k, len(protocols)))
    return results


class FLComparePanel(Panel):
    title = "Compare horizontal FL protocols"
    description = (
        "Runs the chosen protocols on the same digits clients (IID, or Dirichlet non-IID with concentration α) and "
        "overlays their test accuracy per round. Parameter-averaging protocols report the global model; FedGEMS and "
        "DSFL their server model; FedMD (no global model) the mean client. The distillation protocols hold out 300 "
        "training samples as public data."
    )
    params = (
        MultiChoiceParam("protocols", ("FedAVG", "FedProx", "FedEXP"), options=PROTOCOLS),
        IntParam("num_clients", 4, min=2, max=10, label="clients"),
        IntParam("num_communication", 5, min=1, max=30, label="rounds"),
        ChoiceParam("partition", "dirichlet", options=("iid", "dirichlet"), label="data split"),
        FloatParam("alpha", 0.5, min=-2, max=1, step=0.1, log=True, label="Dirichlet α"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("final_accuracy", "accuracy_per_round")
    ARGS = ("protocols", "num_clients", "num_communication", "partition", "alpha", "seed")

    def compute(self, values, progress):
        results = run_compare(**{k: values[k] for k in self.ARGS}, progress=progress)
        result = {
            "final_accuracy": {p: r[0][-1] for p, r in results.items()},
            "accuracy_per_round": {p: r[0] for p, r in results.items()},
            "bytes_uploaded_per_round": {p: r[1][-1] for p, r in results.items()},
            "accuracy_of": {p: r[2] for p, r in results.items()},
        }
        return result, {}

    def draw(self, fig, result, data):
        ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
        for p, acc in result["accuracy_per_round"].items():
            ax1.plot(np.arange(1, len(acc) + 1), acc, marker="o", label=p)
        ax1.set_ylim(0, 1)
        ax1.set_xlabel("round")
        ax1.set_ylabel("test accuracy")
        ax1.legend(fontsize=7)
        ax2.axis("off")
        rows = [[p, f"{result['final_accuracy'][p]:.3f}", result["accuracy_of"][p],
                 f"{result['bytes_uploaded_per_round'][p] / 1024:.0f} KiB"] for p in result["final_accuracy"]]
        table = ax2.table(cellText=rows, colLabels=["protocol", "final acc.", "of", "upload/round"], loc="center")
        table.auto_set_font_size(False)
        table.set_fontsize(7)

    def code(self, v):
        call = f"""results = run_compare({kwargs_text(v, self.ARGS)})
accuracy_per_round = {{p: r[0] for p, r in results.items()}}
final_accuracy = {{p: r[0][-1] for p, r in results.items()}}
for p, acc in final_accuracy.items():
    print(f"{{p:8s}} {{acc:.3f}} ({{results[p][2]}})")"""
        return code_view([federated_digits, heterogeneous_models, run_protocol, run_compare], call)
