"""GAN attack panel: a malicious FedAVG client generates a class it never saw."""
import numpy as np
import torch
from torch import nn

from aijack_lab.attack import GANAttackClientManager
from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import make_client_dataloaders, partition_iid
from aijack_lab.models import make_digits_model
from aijack_lab.models.generator import make_digits_generator
from aijack_lab.utils import predict

from .base import Panel
from .common import digits, show_digit_row
from .params import BoolParam, IntParam
from .registry import register

SHOW = 6  # generated images shown per round


@register("Attack", "Model Inversion", "GAN Attack")
class GANAttackPanel(Panel):
    title = "GAN attack — a malicious client's generator against the shared model"
    description = (
        "Three clients train a digits classifier with FedAVG. Client 0 is malicious and holds no image of the "
        "target class. After each download it uses the shared model as a frozen discriminator and trains a "
        "generator until the model calls the generated images the target class. With the active variant it "
        "also trains the shared model on its generated images under an extra 'fake' class, so the honest "
        "clients must teach the model how real target images differ from the generator's."
    )
    reference = ("Hitaj, Ateniese, Perez-Cruz. Deep Models Under the GAN: Information Leakage from Collaborative "
                 "Deep Learning. CCS 2017.")
    params = (
        IntParam("target_label", 6, min=0, max=9, label="target class"),
        IntParam("num_communication", 4, min=1, max=20, label="rounds"),
        IntParam("gan_epoch", 20, min=1, max=200, label="generator steps / round"),
        BoolParam("active", False, label="active (fake class)"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("target_rate_per_round", "final_accuracy")
    figsize = (9.5, 4.0)

    def compute(self, values, progress):
        x_train, y_train, x_test, y_test = digits()
        target, seed, active = values["target_label"], values["seed"], values["active"]
        num_classes = 11 if active else 10
        parts = partition_iid(len(x_train), 3, seed=seed)
        parts[0] = parts[0][y_train[parts[0]] != target]
        loaders = make_client_dataloaders(x_train, y_train, parts, batch_size=32, seed=seed)
        generator = make_digits_generator(nz=16, seed=seed)
        manager = GANAttackClientManager(
            target, generator, torch.optim.Adam(generator.parameters(), lr=1e-3), nz=16, gan_batch_size=64,
            gan_epoch=values["gan_epoch"], ignore_first_download=True, fake_label=10 if active else None, seed=seed,
        )
        GANClient = manager.attach(FedAVGClient)
        clients = [GANClient(make_digits_model("cnn", seed=seed, num_classes=num_classes), user_id=0)]
        clients += [FedAVGClient(make_digits_model("cnn", seed=seed, num_classes=num_classes), user_id=i) for i in (1, 2)]
        server = FedAVGServer(clients, make_digits_model("cnn", seed=seed, num_classes=num_classes))
        optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
        noise = torch.randn((200, 16), generator=torch.Generator().manual_seed(seed))
        rates, confidences, per_round = [], [], []

        def watch(api, info):
            fake = clients[0].attack(200, noise=noise)
            probs = predict(server.server_model, fake).softmax(1)
            rates.append((probs.argmax(1) == target).float().mean().item())
            confidences.append(probs[:, target].mean().item())
            per_round.append(fake[:SHOW].numpy())

        api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, loaders,
                        num_communication=values["num_communication"], validation_dataloader=(x_test, y_test),
                        on_round=watch, progress=progress)
        history = api.run()
        acc = [h["global_accuracy"] for h in history]
        result = {
            "target_label": target,
            "target_rate_per_round": rates,
            "target_confidence_per_round": confidences,
            "final_target_rate": rates[-1],
            "final_accuracy": acc[-1],
            "accuracy_per_round": acc,
            "attacker_holds_target": bool((y_train[parts[0]] == target).any()),
        }
        real = x_test[y_test == target][:SHOW].numpy()
        return result, {"per_round": per_round, "real": real}

    def draw(self, fig, result, data):
        rounds = len(data["per_round"])
        shown = [r for r in sorted(set(np.linspace(0, rounds - 1, min(3, rounds)).astype(int)))]
        grid = fig.add_gridspec(len(shown) + 1, SHOW + 3)
        ax = fig.add_subplot(grid[:, :3])
        x = np.arange(1, rounds + 1)
        ax.plot(x, result["target_rate_per_round"], marker="o", label="fakes called target")
        ax.plot(x, result["target_confidence_per_round"], marker="s", label="mean confidence")
        ax.plot(x, result["accuracy_per_round"], marker="^", label="test accuracy")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("round")
        ax.legend(fontsize=7)
        ax.set_title(f"shared model on generated '{result['target_label']}'", fontsize=9)
        real_axes = [fig.add_subplot(grid[0, 3 + i]) for i in range(SHOW)]
        show_digit_row(real_axes, data["real"], ["real"] * SHOW)
        for row, r in enumerate(shown, start=1):
            axes = [fig.add_subplot(grid[row, 3 + i]) for i in range(SHOW)]
            show_digit_row(axes, data["per_round"][r], [f"round {r + 1}"] * SHOW)

    def code(self, v):
        nc = 11 if v["active"] else 10
        fake = 10 if v["active"] else None
        s = v["seed"]
        return f"""\
import torch
from torch import nn
from aijack_lab.attack import GANAttackClientManager
from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_iid
from aijack_lab.models import make_digits_model
from aijack_lab.models.generator import make_digits_generator
from aijack_lab.utils import predict

X_train, y_train, X_test, y_test = load_digits()
target_label = {v['target_label']}
parts = partition_iid(len(X_train), 3, seed={s})
parts[0] = parts[0][y_train[parts[0]] != target_label]  # the attacker holds no image of the target
dataloaders = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed={s})

generator = make_digits_generator(nz=16, seed={s})
manager = GANAttackClientManager(target_label, generator, torch.optim.Adam(generator.parameters(), lr=1e-3),
                                 nz=16, gan_batch_size=64, gan_epoch={v['gan_epoch']}, ignore_first_download=True,
                                 fake_label={fake}, seed={s})
GANAttackFedAVGClient = manager.attach(FedAVGClient)
clients = [GANAttackFedAVGClient(make_digits_model("cnn", seed={s}, num_classes={nc}), user_id=0)]
clients += [FedAVGClient(make_digits_model("cnn", seed={s}, num_classes={nc}), user_id=i) for i in (1, 2)]
server = FedAVGServer(clients, make_digits_model("cnn", seed={s}, num_classes={nc}))
optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]

noise = torch.randn((200, 16), generator=torch.Generator().manual_seed({s}))
target_rate_per_round = []

def watch(api, info):  # how often the shared model calls the generated images the target
    fake = clients[0].attack(200, noise=noise)
    target_rate_per_round.append((predict(server.server_model, fake).argmax(1) == target_label).float().mean().item())

api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, dataloaders,
                num_communication={v['num_communication']}, validation_dataloader=(X_test, y_test), on_round=watch)
history = api.run()
final_accuracy = history[-1]["global_accuracy"]
print(f"generated images called {{target_label}}: {{target_rate_per_round}}; test accuracy {{final_accuracy:.3f}}")
"""
