# %% [markdown]
# # Malicious clients in federated learning: poisoning, backdoors and free riders
#
# **What you will learn:** how a few malicious FedAVG clients can wreck the global model
# (History attack, MPAF, label flipping), plant a backdoor that survives averaging (DBA, model
# replacement), or take the model without training (delta-weight free rider) — and how to measure
# each effect against the clean run with the same seed. Every attack is a *manager*:
# `manager.attach(FedAVGClient)` returns a malicious client class, and managers compose with each
# other and with server-side defenses.
#
# The setting of every run: 5 IID clients on the bundled digits, a small CNN, 5 rounds of one
# local epoch; the malicious clients are the last ones.

# %%
import torch
from torch import nn

from aijack_lab.attack import (
    DistributedBackdoorAttackClientManager,
    FreeRiderClientManager,
    HistoryAttackClientWrapper,
    LabelFlipAttackClientManager,
    MAPFClientWrapper,
    ModelReplacementAttackClientManager,
)
from aijack_lab.attack.backdoor import backdoor_success_rate, class_accuracy, decompose_trigger, digits_corner_trigger
from aijack_lab.attack.fl_utils import make_fl_clients
from aijack_lab.attack.freerider import update_statistics
from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_iid
from aijack_lab.defense import NormClippingServerManager
from aijack_lab.models import make_digits_model

torch.set_num_threads(1)
X_train, y_train, X_test, y_test = load_digits()
parts = partition_iid(len(X_train), 5, seed=0)
NN = lambda: make_digits_model("cnn", seed=0)
criterion = nn.CrossEntropyLoss()


def run_fedavg(client_cls=FedAVGClient, num_malicious=0, server_cls=FedAVGServer, on_round=None, rounds=5):
    """FedAVG with 5 clients, the last `num_malicious` of class `client_cls`; returns accuracies and the server."""
    dataloaders = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed=0)
    clients = make_fl_clients(FedAVGClient, client_cls, NN, 5, num_malicious)
    server = server_cls(clients, NN())
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    api = FedAVGAPI(server, clients, criterion, optimizers, dataloaders, num_communication=rounds,
                    validation_dataloader=(X_test, y_test), on_round=on_round)
    history = api.run()
    return [h["global_accuracy"] for h in history], server, clients


clean_acc, clean_server, _ = run_fedavg()
print("clean run:", [round(a, 3) for a in clean_acc])
assert clean_acc[-1] >= 0.9

# %% [markdown]
# ## Poisoning
#
# **MPAF** (Cao & Gong, 2022; AIJack's `MAPFClientWrapper`) — fake clients drag the global model
# toward a random base model, scaling the direction by λ. This is the paper's Code S-16 with two
# clients:

# %%
dataloaders = make_client_dataloaders(X_train, y_train, partition_iid(len(X_train), 2, seed=0), batch_size=32, seed=0)

manager = MAPFClientWrapper(lam=3)
MAPFFedAVGClient = manager.attach(FedAVGClient)

clients = [FedAVGClient(NN(), user_id=0), MAPFFedAVGClient(NN(), user_id=1)]
server = FedAVGServer(clients, NN())
optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]

api = FedAVGAPI(server, clients, criterion, optimizers, dataloaders, validation_dataloader=(X_test, y_test))
api.run()
print("two clients, one MPAF: accuracy after one round", round(api.history[-1]["global_accuracy"], 3))
assert api.history[-1]["global_accuracy"] < 0.3

# %% [markdown]
# With one fake client among five, MPAF still wins: λ·w = 3·0.2 of the distance to the base model
# per round is more than honest training recovers.

# %%
mapf_acc, _, _ = run_fedavg(MAPFClientWrapper(lam=3).attach(FedAVGClient), 1)
print("MPAF   ", [round(a, 3) for a in mapf_acc])
assert mapf_acc[-1] <= 0.3

# %% [markdown]
# **History attack** — a data-free fake client uploads the last global step reversed and scaled
# by λ, so with λ·w = 1 it cancels the progress of the previous round:

# %%
history_acc, _, _ = run_fedavg(HistoryAttackClientWrapper(lam=5).attach(FedAVGClient), 1)
print("clean  ", [round(a, 3) for a in clean_acc])
print("history", [round(a, 3) for a in history_acc])
assert history_acc[-1] <= clean_acc[-1] - 0.1

# %% [markdown]
# **Label flipping** — the malicious client relabels its 3s as 8s. The global accuracy barely
# moves, but the accuracy on the victim class drops:

# %%
flip_acc, flip_server, _ = run_fedavg(LabelFlipAttackClientManager(victim_label=3, target_label=8).attach(FedAVGClient), 1)
victim = class_accuracy(flip_server.server_model, X_test, y_test, 3)
clean_victim = class_accuracy(clean_server.server_model, X_test, y_test, 3)
print(f"accuracy on 3s: clean {clean_victim:.3f}, with one label flipper {victim:.3f}; overall {flip_acc[-1]:.3f}")
assert victim <= clean_victim - 0.2

# %% [markdown]
# ## Backdoors
#
# The trigger: four 3-pixel bars on the borders of the 8x8 digit. The backdoor succeeds when a
# triggered digit (of any class but 0) is classified as 0.
#
# **DBA** (Xie et al., 2020) — two colluding clients each poison 20% of their samples with *half*
# of the trigger and double their update; the global model learns the whole trigger.

# %%
global_trigger = digits_corner_trigger()
local_triggers = decompose_trigger(global_trigger, 2)
dba = DistributedBackdoorAttackClientManager({3: local_triggers[0], 4: local_triggers[1]},
                                             target_label=0, poison_ratio=0.2, scale=2.0)
dba_acc, dba_server, _ = run_fedavg(dba.attach(FedAVGClient), 2)
dba_success = backdoor_success_rate(dba_server.server_model, X_test, y_test, global_trigger, 0)
clean_success = backdoor_success_rate(clean_server.server_model, X_test, y_test, global_trigger, 0)
print(f"backdoor success: clean {clean_success:.3f}, DBA {dba_success:.3f}; "
      f"clean accuracy {clean_acc[-1]:.3f} -> {dba_acc[-1]:.3f}")
assert dba_success >= 0.8 and dba_acc[-1] >= clean_acc[-1] - 0.05

# %% [markdown]
# **Model replacement** (Bagdasaryan et al., 2020) — one attacker, in the last round only, scales
# its backdoored update by γ = 5 (the number of clients) so that the average *is* its model. The
# same update without scaling is averaged away. A server-side defense composes with it:
# `NormClippingServerManager` clips every update to the round's median norm.

# %%
def model_replacement(gamma, server_cls=FedAVGServer):
    manager = ModelReplacementAttackClientManager(alpha=1.0, gamma=gamma, trigger=global_trigger, target_label=0,
                                                  poison_ratio=0.2, attack_rounds=[4])
    acc, server, _ = run_fedavg(manager.attach(FedAVGClient), 1, server_cls=server_cls)
    return acc[-1], backdoor_success_rate(server.server_model, X_test, y_test, global_trigger, 0)


mr = model_replacement(5.0)
plain = model_replacement(1.0)
clipped = model_replacement(5.0, NormClippingServerManager().attach(FedAVGServer))
for name, (acc, success) in [("γ = 5", mr), ("γ = 1", plain), ("γ = 5, norm clipping", clipped)]:
    print(f"{name:22s} accuracy {acc:.3f}  backdoor success {success:.3f}")
assert mr[1] >= 0.8 and plain[1] <= 0.3 and clipped[1] <= 0.1

# %% [markdown]
# ## Free riding
#
# The delta-weight free rider (Fraboni et al., 2021; paper Code S-17) never trains: it uploads the
# last global step plus Gaussian noise. Its update statistics give it away — with σ = 1 its norm
# dwarfs every honest update.

# %%
stats, previous = [], [None]


def record(api, info):
    stats.append(update_statistics(info["client_updates"], previous[0]))
    previous[0] = [t.clone() for t in api.server.aggregated_gradients]


rider_acc, _, rider_clients = run_fedavg(FreeRiderClientManager(mu=0, sigma=1.0).attach(FedAVGClient), 1, on_round=record)
for r, round_stats in enumerate(stats):
    print(f"round {r}: update norms", [round(s["norm"], 1) for s in round_stats])
print("accuracy with the free rider", [round(a, 3) for a in rider_acc])
assert all(r[-1]["norm"] > 2 * max(s["norm"] for s in r[:-1]) for r in stats)
assert rider_acc[-1] >= 0.85  # it got a good model without training

# %% [markdown]
# ## The panel
#
# Pick an attack, the number of malicious clients and the attack's parameters; the panel runs the
# attacked and the clean FedAVG and plots both (its Code tab shows the calls).

# %%
from aijack_lab.widgets import FLAttackPanel

attack_panel = FLAttackPanel(attack="dba", num_malicious=2, target_label=0, poison_ratio=0.2, scale=2.0)
attack_panel.run()
assert attack_panel.result["backdoor_success"] >= 0.8
attack_panel

# %% [markdown]
# ## Exercises
#
# 1. How small can λ get before MPAF with one fake client out of five stops hurting? Relate it to λ·w.
# 2. Give the DBA clients `scale=1.0`: does the assembled trigger still beat each local part?
# 3. Model replacement with `attack_rounds=[1]` instead of the last round: why does the backdoor not survive?
# 4. Set the free rider's σ to 0: which statistic now gives it away? (Hint: the `cosine` to the previous aggregate.)
# 5. Attach `NormClippingServerManager()` against MPAF. Does clipping to the median norm save the model?
