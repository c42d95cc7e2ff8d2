"""FedAVG panel: global accuracy per round for IID or Dirichlet non-IID clients."""
import textwrap

import numpy as np
import torch
from torch import nn

from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import make_client_dataloaders, partition_dirichlet, partition_iid
from aijack_lab.models import make_digits_model

from .base import Panel
from .common import digits
from .params import ChoiceParam, FloatParam, IntParam
from .registry import register

# engine choice -> (engine kind, engines); "inprocess" needs no engine object
ENGINE_CHOICES = (
    ("in-process", "inprocess"),
    ("ipyparallel, 2 engines", "ipyparallel-2"),
    ("ipyparallel, 4 engines", "ipyparallel-4"),
    ("MPI (ipyparallel engines under mpiexec), 2 ranks", "mpi-2"),
)
_ENGINES = {}  # started engines, reused across runs (a cluster takes seconds to start)


def panel_engine(choice):
    """The engine for a dropdown choice: None in-process, else a started, cached IPyParallelEngine."""
    if choice == "inprocess":
        return None
    from aijack_lab.engines.ipyparallel import IPyParallelEngine

    kind, n = choice.split("-")
    engine = _ENGINES.get(choice)
    if engine is None or engine.state != "running":
        engine = IPyParallelEngine(n_engines=int(n), engines="mpi" if kind == "mpi" else "local")
        _ENGINES[choice] = engine
    return engine.start()


def close_panel_engines():
    """Stop the clusters the panels started (they also stop when Python exits)."""
    while _ENGINES:
        _ENGINES.popitem()[1].close()


@register("FL", "Horizontal", "FedAVG")
class FedAVGPanel(Panel):
    title = "FedAVG — Federated Averaging"
    description = (
        "Each client trains the shared model on its own digits for a few local epochs; the server "
        "replaces the global model by the mean of the clients' models, weighted by their data sizes. "
        "Non-IID clients (small Dirichlet α) hold few classes each and slow convergence."
    )
    reference = "McMahan et al. Communication-Efficient Learning of Deep Networks from Decentralized Data. AISTATS 2017."
    params = (
        IntParam("num_clients", 4, min=2, max=10, label="clients"),
        IntParam("num_communication", 5, min=1, max=30, label="rounds"),
        IntParam("local_epoch", 1, min=1, max=5, label="local epochs"),
        ChoiceParam("partition", "iid", options=("iid", "dirichlet"), label="data split"),
        FloatParam("alpha", 0.5, min=-2, max=1, step=0.1, log=True, label="Dirichlet α"),
        ChoiceParam("model", "cnn", options=("cnn", "mlp")),
        FloatParam("lr", 0.1, min=0.01, max=0.5, step=0.01, label="client SGD lr"),
        IntParam("seed", 0, min=0, max=100),
        ChoiceParam("engine", "inprocess", options=ENGINE_CHOICES,
                    help="where the clients train: here, on ipyparallel engines, or on engines under mpiexec"),
    )
    reproducible = ("final_accuracy", "accuracy_per_round")

    def compute(self, values, progress):
        x_train, y_train, x_test, y_test = digits()
        n, seed = values["num_clients"], values["seed"]
        if values["partition"] == "iid":
            parts = partition_iid(len(x_train), n, seed=seed)
        else:
            parts = partition_dirichlet(y_train, n, alpha=values["alpha"], seed=seed)
        loaders = make_client_dataloaders(x_train, y_train, parts, batch_size=32, seed=seed)
        clients = [FedAVGClient(make_digits_model(values["model"], seed=seed), user_id=i) for i in range(n)]
        server = FedAVGServer(clients, make_digits_model(values["model"], seed=seed))
        optimizers = [torch.optim.SGD(c.parameters(), lr=values["lr"], momentum=0.9) for c in clients]
        choice = values.get("engine", "inprocess")
        if choice != "inprocess":
            self.status.value = f"starting {choice} engines…"
        engine = panel_engine(choice)
        if engine is not None:
            self.status.value = engine.status
        api = FedAVGAPI(
            server, clients, nn.CrossEntropyLoss(), optimizers, loaders,
            num_communication=values["num_communication"], local_epoch=values["local_epoch"],
            validation_dataloader=(x_test, y_test), progress=progress, engine=engine,
        )
        history = api.run()
        acc = [h["global_accuracy"] for h in history]
        label_counts = np.stack([np.bincount(y_train[p].numpy(), minlength=10) for p in parts])
        result = {
            "final_accuracy": acc[-1],
            "accuracy_per_round": acc,
            "seconds": sum(h["seconds"] for h in history),
            "bytes_uploaded_per_round": history[-1]["bytes_uploaded"],
            "engine_status": "in-process" if engine is None else engine.status,
        }
        return result, {"label_counts": label_counts}

    def draw(self, fig, result, data):
        ax1, ax2 = fig.subplots(1, 2)
        rounds = np.arange(1, len(result["accuracy_per_round"]) + 1)
        ax1.plot(rounds, result["accuracy_per_round"], marker="o")
        ax1.set_xlabel("round")
        ax1.set_ylabel("global test accuracy")
        ax1.set_ylim(0, 1)
        ax1.set_title("FedAVG accuracy per round", fontsize=9)
        counts = data["label_counts"]
        bottom = np.zeros(counts.shape[0])
        cmap = __import__("matplotlib").colormaps["tab10"]
        for label in range(counts.shape[1]):
            ax2.bar(np.arange(counts.shape[0]), counts[:, label], bottom=bottom, color=cmap(label), label=str(label))
            bottom += counts[:, label]
        ax2.set_xlabel("client")
        ax2.set_ylabel("samples per label")
        ax2.set_title("client data", fontsize=9)
        ax2.legend(fontsize=6, ncol=2, title="label", title_fontsize=6)

    def code(self, v):
        if v["partition"] == "iid":
            split = f"parts = partition_iid(len(X_train), {v['num_clients']}, seed={v['seed']})"
        else:
            split = f"parts = partition_dirichlet(y_train, {v['num_clients']}, alpha={v['alpha']!r}, seed={v['seed']})"
        choice = v.get("engine", "inprocess")
        api_block = f"""\
api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, dataloaders,
                num_communication={v['num_communication']}, local_epoch={v['local_epoch']},
                validation_dataloader=(X_test, y_test){{engine}})
history = api.run()"""
        engine_import = ""
        if choice == "inprocess":
            api_block = api_block.format(engine="")
        else:
            kind, n = choice.split("-")
            mpi = ', engines="mpi"' if kind == "mpi" else ""
            engine_import = "from aijack_lab.engines.ipyparallel import IPyParallelEngine\n"
            api_block = (f"# clients train on a cluster started here and stopped after the run\n"
                         f"with IPyParallelEngine(n_engines={n}{mpi}) as engine:\n"
                         + textwrap.indent(api_block.format(engine=",\n                engine=engine"), "    "))
        return f"""\
import torch
from torch import nn
from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_dirichlet, partition_iid
from aijack_lab.models import make_digits_model
{engine_import}
X_train, y_train, X_test, y_test = load_digits()
{split}
dataloaders = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed={v['seed']})

clients = [FedAVGClient(make_digits_model({v['model']!r}, seed={v['seed']}), user_id=i) for i in range({v['num_clients']})]
server = FedAVGServer(clients, make_digits_model({v['model']!r}, seed={v['seed']}))
optimizers = [torch.optim.SGD(c.parameters(), lr={v['lr']!r}, momentum=0.9) for c in clients]

{api_block}

accuracy_per_round = [h["global_accuracy"] for h in history]
final_accuracy = accuracy_per_round[-1]
print(f"final accuracy {{final_accuracy:.3f}}")
"""
