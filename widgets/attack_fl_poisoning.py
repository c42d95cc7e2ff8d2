"""FLAttackPanel: FedAVG with malicious clients (poisoning, backdoor, free riding) against the clean run.

One panel class, registered once per attack with that attack preset.
"""
from typing import Any, Dict, List

import numpy as np

from .base import Panel
from .params import ChoiceParam, FloatParam, IntParam
from .registry import register

ATTACKS = {
    "history": ("History attack", "HistoryAttackClientWrapper"),
    "label_flip": ("Label flip", "LabelFlipAttackClientManager"),
    "mapf": ("MPAF (MAPF)", "MAPFClientWrapper"),
    "dba": ("DBA backdoor", "DistributedBackdoorAttackClientManager"),
    "model_replacement": ("Model replacement backdoor", "ModelReplacementAttackClientManager"),
    "free_rider": ("Delta-weight free rider", "FreeRiderClientManager"),
}
BACKDOORS = ("dba", "model_replacement")


def _manager_source(v: Dict[str, Any]) -> str:
    """The line(s) building the attack's manager, shared by compute() and the Code view."""
    a, n, m, seed = v["attack"], v["num_clients"], v["num_malicious"], v["seed"]
    if a == "history":
        return f"manager = HistoryAttackClientWrapper(lam={v['lam']!r})"
    if a == "mapf":
        return f"manager = MAPFClientWrapper(lam={v['lam']!r}, seed={seed})"
    if a == "label_flip":
        return f"manager = LabelFlipAttackClientManager(victim_label={v['victim_label']}, target_label={v['target_label']})"
    if a == "dba":
        return (
            f"local_triggers = decompose_trigger(global_trigger, {max(m, 1)})  # one part per colluding client\n"
            f"manager = DistributedBackdoorAttackClientManager(\n"
            f"    {{{n - m} + i: part for i, part in enumerate(local_triggers)}},\n"
            f"    target_label={v['target_label']}, poison_ratio={v['poison_ratio']!r}, scale={v['scale']!r}, seed={seed})"
        )
    if a == "model_replacement":
        return (
            f"manager = ModelReplacementAttackClientManager(\n"
            f"    alpha=1.0, gamma={v['scale']!r}, trigger=global_trigger, target_label={v['target_label']},\n"
            f"    poison_ratio={v['poison_ratio']!r}, attack_rounds=[{v['num_communication'] - 1}], seed={seed})"
        )
    if a == "free_rider":
        return f"manager = FreeRiderClientManager(mu=0.0, sigma={v['sigma']!r}, seed={seed})"
    raise ValueError(f"unknown attack {a!r}; choose one of {sorted(ATTACKS)}")


def _source(v: Dict[str, Any]) -> str:
    a, n, m, seed, rounds = v["attack"], v["num_clients"], v["num_malicious"], v["seed"], v["num_communication"]
    if a in BACKDOORS:
        metric = f"backdoor_success_rate(api.server.server_model, X_test, y_test, global_trigger, {v['target_label']})"
    elif a == "label_flip":
        metric = f"class_accuracy(api.server.server_model, X_test, y_test, {v['victim_label']})"
    elif m > 0:
        # the mean L2 norm of the uploads of the last m clients (malicious in the attacked run)
        metric = f"sum(s['norm'] for s in stats[-1][-{m}:]) / {m}"
    else:
        metric = "None"
    server = "NormClippingServerManager().attach(FedAVGServer)" if v["defense"] == "norm_clipping" else "FedAVGServer"
    return f"""\
import torch
from torch import nn
from aijack_lab.attack import {ATTACKS[a][1]}
from aijack_lab.attack.backdoor import backdoor_success_rate, class_accuracy, decompose_trigger, digits_corner_trigger
from aijack_lab.attack.fl_utils import make_fl_clients
from aijack_lab.attack.freerider import update_statistics
from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_iid
from aijack_lab.defense import NormClippingServerManager
from aijack_lab.models import make_digits_model

X_train, y_train, X_test, y_test = load_digits()
parts = partition_iid(len(X_train), {n}, seed={seed})
NN = lambda: make_digits_model("cnn", seed={seed})
global_trigger = digits_corner_trigger()
Server = {server}

def run_fedavg(client_cls, num_malicious):
    \"\"\"FedAVG where the last num_malicious of the {n} clients are client_cls; per-round numbers.\"\"\"
    dataloaders = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed={seed})
    clients = make_fl_clients(FedAVGClient, client_cls, NN, {n}, num_malicious)
    server = Server(clients, NN())
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    metric, stats, previous = [], [], [None]

    def record(api, info):
        stats.append(update_statistics(info["client_updates"], previous[0]))
        previous[0] = [t.clone() for t in api.server.aggregated_gradients]
        metric.append({metric})

    api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, dataloaders,
                    num_communication={rounds}, local_epoch=1,
                    validation_dataloader=(X_test, y_test), on_round=record)
    history = api.run()
    return [h["global_accuracy"] for h in history], metric, stats

{_manager_source(v)}
MaliciousClient = manager.attach(FedAVGClient)

clean_accuracy_per_round, clean_metric_per_round, _ = run_fedavg(FedAVGClient, 0)
accuracy_per_round, attack_metric_per_round, stats = run_fedavg(MaliciousClient, {m})
print("clean   ", [round(a, 3) for a in clean_accuracy_per_round])
print("attacked", [round(a, 3) for a in accuracy_per_round])
"""


@register("Attack", "Poisoning", "History Attack", attack="history", num_malicious=1, lam=5.0)
@register("Attack", "Poisoning", "Label Flip", attack="label_flip", num_malicious=1, victim_label=3, target_label=8)
@register("Attack", "Poisoning", "MAPF", attack="mapf", num_malicious=1, lam=3.0)
@register("Attack", "Backdoor", "DBA", attack="dba", num_malicious=2, target_label=0, poison_ratio=0.2, scale=2.0)
@register("Attack", "Backdoor", "Model Replacement", attack="model_replacement", num_malicious=1, target_label=0,
          poison_ratio=0.2, scale=5.0)
@register("Attack", "Free-Rider", "Delta-Weight", attack="free_rider", num_malicious=1, sigma=1.0)
class FLAttackPanel(Panel):
    title = "Malicious clients in federated learning"
    description = (
        "FedAVG on digits where the last clients are malicious. <b>Poisoning</b>: the history attack "
        "reverses the last global step, MPAF drags the global model to a random base model, label "
        "flipping relabels one class. <b>Backdoor</b>: DBA splits a pixel trigger among colluding "
        "clients; model replacement scales one backdoored update so it survives averaging (γ ≈ number "
        "of clients; it attacks in the last round). <b>Free rider</b>: uploads the last global step plus "
        "noise without training. Each run is compared with the clean run (same seed, all clients honest)."
    )
    reference = (
        "Cao & Gong, MPAF, CVPRW 2022; Tolpegin et al., ESORICS 2020; Xie et al., DBA, ICLR 2020; "
        "Bagdasaryan et al., AISTATS 2020; Fraboni et al., AISTATS 2021; Sun et al. 2019 (norm clipping)."
    )
    params = (
        ChoiceParam("attack", "history", options=tuple((label, key) for key, (label, _) in ATTACKS.items())),
        IntParam("num_clients", 5, min=2, max=10, label="clients"),
        IntParam("num_malicious", 1, min=0, max=10, label="malicious clients"),
        IntParam("num_communication", 5, min=1, max=15, label="rounds"),
        FloatParam("lam", 3.0, min=0.5, max=10.0, step=0.5, label="λ (history, MPAF)"),
        IntParam("victim_label", 3, min=0, max=9, label="victim label (flip)"),
        IntParam("target_label", 8, min=0, max=9, label="target label"),
        FloatParam("poison_ratio", 0.2, min=0.0, max=1.0, step=0.05, label="poison ratio (backdoor)"),
        FloatParam("scale", 2.0, min=0.5, max=10.0, step=0.5, label="scale / γ (backdoor)"),
        FloatParam("sigma", 1.0, min=0.0, max=3.0, step=0.1, label="noise σ (free rider)"),
        ChoiceParam("defense", "none", options=(("none", "none"), ("norm clipping (median)", "norm_clipping")),
                    label="server defense"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("accuracy_per_round", "clean_accuracy_per_round", "attack_metric_per_round",
                    "clean_metric_per_round")
    figsize = (10.0, 3.6)

    def compute(self, values, progress):
        from aijack_lab.attack.fl_utils import check_malicious_count

        check_malicious_count(values["num_clients"], values["num_malicious"])
        namespace: Dict[str, Any] = {"__name__": "__flattack__"}
        total = 2 * values["num_communication"]
        done = [0]

        def step(*_args):
            done[0] += 1
            progress(done[0], total)

        # the panel runs exactly the Code view's source (with a progress hook), so both give the same numbers
        source = _source(values).replace("on_round=record)", "on_round=[record, _panel_step])")
        namespace["_panel_step"] = step
        namespace["print"] = lambda *args, **kwargs: None
        exec(compile(source, "<FLAttackPanel>", "exec"), namespace)
        acc, clean = namespace["accuracy_per_round"], namespace["clean_accuracy_per_round"]
        metric, clean_metric = namespace["attack_metric_per_round"], namespace["clean_metric_per_round"]
        stats: List[List[Dict[str, float]]] = namespace["stats"]
        n, m = values["num_clients"], values["num_malicious"]
        honest_norm = [float(np.mean([s["norm"] for s in r[: n - m]])) if n > m else float("nan") for r in stats]
        bad_norm = [float(np.mean([s["norm"] for s in r[n - m:]])) if m else float("nan") for r in stats]
        result: Dict[str, Any] = {
            "attack": values["attack"],
            "final_accuracy": acc[-1],
            "clean_final_accuracy": clean[-1],
            "accuracy_drop": clean[-1] - acc[-1],
            "accuracy_per_round": acc,
            "clean_accuracy_per_round": clean,
            "attack_metric_per_round": metric,
            "clean_metric_per_round": clean_metric,
            "honest_update_norm_per_round": honest_norm,
            "malicious_update_norm_per_round": bad_norm,
        }
        if values["attack"] in BACKDOORS:
            result["backdoor_success"] = metric[-1]
            result["clean_backdoor_success"] = clean_metric[-1]
        elif values["attack"] == "label_flip":
            result["victim_accuracy"] = metric[-1]
            result["clean_victim_accuracy"] = clean_metric[-1]
        if values["attack"] == "free_rider" and m:
            cos = [[s.get("cosine", float("nan")) for s in r] for r in stats]
            result["malicious_cosine_per_round"] = [float(np.mean(r[n - m:])) for r in cos]
            result["honest_cosine_per_round"] = [float(np.mean(r[: n - m])) if n > m else float("nan") for r in cos]
        return result, {}

    def draw(self, fig, result, data):
        ax1, ax2 = fig.subplots(1, 2)
        rounds = np.arange(1, len(result["accuracy_per_round"]) + 1)
        ax1.plot(rounds, result["clean_accuracy_per_round"], marker="o", label="clean run")
        ax1.plot(rounds, result["accuracy_per_round"], marker="s", color="C3", label="with attackers")
        ax1.set_ylim(0, 1)
        ax1.set_xlabel("round")
        ax1.set_ylabel("global test accuracy")
        ax1.legend(fontsize=7)
        ax1.set_title(ATTACKS[result["attack"]][0], fontsize=9)
        attack = result["attack"]
        if attack in BACKDOORS:
            ylabel = "backdoor success rate (global trigger)"
        elif attack == "label_flip":
            ylabel = "victim-class accuracy"
        else:
            ylabel = "update norm of the last clients"
        metric, clean_metric = result["attack_metric_per_round"], result["clean_metric_per_round"]
        if any(x is None for x in metric + clean_metric):
            ax2.text(0.5, 0.5, "no malicious clients", ha="center", va="center", transform=ax2.transAxes)
        else:
            ax2.plot(rounds, clean_metric, marker="o", label="clean run (same clients honest)")
            ax2.plot(rounds, metric, marker="s", color="C3", label="with attackers")
            if attack in BACKDOORS or attack == "label_flip":
                ax2.set_ylim(0, 1)
            elif all(x > 0 for x in metric + clean_metric):
                ax2.set_yscale("log")
            ax2.legend(fontsize=7)
        ax2.set_ylabel(ylabel)
        ax2.set_xlabel("round")

    def code(self, v):
        return _source(v)
