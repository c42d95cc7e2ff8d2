# %% [markdown]
# # Gradient inversion and the GAN attack in federated learning
#
# **What you will learn:** why sharing gradients is not sharing "no data": how a server rebuilds a
# client's private digits from one gradient (DLG, iDLG, GS, CPL, GradInversion — five settings of one
# `GradientInversion_Attack`), how the same attack is attached to a FedAVG server in two lines (paper
# Code 7 / S-14), and how a malicious *client* trains a GAN against the shared model to draw a class
# it never saw (Hitaj et al. 2017).
#
# The attacked model is a small LeNet with sigmoid activations on 8×8 digits, the setting of the DLG
# and iDLG papers. The attacker starts from noise `x'` (and a soft label `y'` for DLG) and minimises
# `D(∇θ loss(f(x'), y'), ∇θ loss(f(x), y))` over `x'` with second-order autograd.

# %%
import torch
from torch import nn

from aijack_lab.attack import GradientInversion_Attack
from aijack_lab.attack.inversion.gradientinversion import estimate_labels
from aijack_lab.attack.inversion.metrics import psnr, reconstruction_mse
from aijack_lab.datasets import load_digits
from aijack_lab.models import train_classifier
from aijack_lab.models.lenet import make_lenet_digits

torch.set_num_threads(1)
X_train, y_train, X_test, y_test = load_digits()
criterion = nn.CrossEntropyLoss()
net = make_lenet_digits(seed=0)


def shared_gradient(model, x, y):
    """What a client sends after one step: the gradient of its loss on (x, y)."""
    loss = criterion(model(x), y)
    return [g.detach() for g in torch.autograd.grad(loss, list(model.parameters()))]


x_private, y_private = X_test[:1], y_test[:1]
received_gradients = shared_gradient(net, x_private, y_private)
noise_mse = reconstruction_mse(torch.randn((1, 1, 8, 8), generator=torch.Generator().manual_seed(0)), x_private)
print("private label:", y_private.tolist(), " MSE of the starting noise:", round(noise_mse, 3))
assert len(received_gradients) == len(list(net.parameters()))

# %% [markdown]
# ## DLG (Zhu et al., 2019): match the gradient in L2, optimise image and label together

# %%
dlg = GradientInversion_Attack(net, (1, 8, 8), distancename="l2", num_iteration=20, seed=0)
x_dlg, y_dlg = dlg.attack(received_gradients)
dlg_mse = reconstruction_mse(x_dlg, x_private)
print(f"DLG: label {y_dlg.tolist()}, MSE {dlg_mse:.2e}, PSNR {psnr(x_dlg, x_private):.1f} dB")
assert dlg_mse < 0.1 * noise_mse
assert y_dlg.tolist() == y_private.tolist()

# %% [markdown]
# ## iDLG (Zhao et al., 2020): the label is in the last layer's gradient
#
# With cross-entropy the last bias gradient is `softmax(f(x)) − onehot(y)`: negative exactly at the
# true label. iDLG reads it off (`optimize_label=False`) and then only optimises the image.

# %%
labels_read = [estimate_labels(shared_gradient(net, X_test[i:i + 1], y_test[i:i + 1]))[0].item() for i in range(30)]
print("labels read from 30 gradients are all right:", labels_read == y_test[:30].tolist())
assert labels_read == y_test[:30].tolist()

idlg = GradientInversion_Attack(net, (1, 8, 8), distancename="l2", optimize_label=False, num_iteration=20, seed=0)
x_idlg, y_idlg = idlg.attack(received_gradients)
print(f"iDLG: label {y_idlg.tolist()}, MSE {reconstruction_mse(x_idlg, x_private):.2e}")
assert reconstruction_mse(x_idlg, x_private) < 0.1 * noise_mse

# %% [markdown]
# ## GS (Geiping et al., 2020): cosine distance and a total-variation prior, on a batch of two
#
# The cosine distance ignores the gradient's scale and matches its direction; Adam does the
# optimisation. A batch comes back in some order, so the MSE pairs each reconstruction with its
# closest original.

# %%
x_pair, y_pair = X_test[[0, 1]], y_test[[0, 1]]
pair_gradients = shared_gradient(net, x_pair, y_pair)
gs = GradientInversion_Attack(net, (1, 8, 8), distancename="cossim", tv_reg_coef=1e-4, optimize_label=False,
                              optimizer_class=torch.optim.Adam, lr=0.1, num_iteration=150, seed=0)
x_gs, y_gs = gs.attack(pair_gradients, batch_size=2)
pair_noise = reconstruction_mse(torch.randn((2, 1, 8, 8), generator=torch.Generator().manual_seed(0)), x_pair)
print(f"GS: labels {sorted(y_gs.tolist())} (true {sorted(y_pair.tolist())}), MSE {reconstruction_mse(x_gs, x_pair):.3g}")
assert sorted(y_gs.tolist()) == sorted(y_pair.tolist())
assert reconstruction_mse(x_gs, x_pair) < 0.1 * pair_noise

# %% [markdown]
# ## CPL (Wei et al., 2020): a label-matching regulariser
#
# `lm_reg_coef` adds the distance between the model's prediction on the dummy and the label, which
# steers the dummy towards inputs the model assigns to that label.

# %%
cpl = GradientInversion_Attack(net, (1, 8, 8), distancename="l2", optimize_label=False, lm_reg_coef=0.01,
                               num_iteration=20, seed=0)
x_cpl, y_cpl = cpl.attack(received_gradients)
print(f"CPL: MSE {reconstruction_mse(x_cpl, x_private):.2e}, first loss {cpl.log_loss[0]:.4f} (iDLG's {idlg.log_loss[0]:.4f})")
assert cpl.log_loss[0] > idlg.log_loss[0]  # the regulariser is part of the objective
assert reconstruction_mse(x_cpl, x_private) < 0.1 * noise_mse

# %% [markdown]
# ## GradInversion (Yin et al., 2021): a batch through batch normalisation
#
# Batch norm hides the input's scale and offset from the gradient, so plain gradient matching finds an
# image up to those. The model's BN running statistics pin them down (`bn_reg_coef`); several restarts
# pulled towards their mean (`group_num`, `gc_reg_coef`) are averaged. The mean is taken after
# registration: a batch's gradient does not depend on the batch order, so two restarts may recover
# two same-label images in swapped places (or a pixel apart); each restart's items are matched to
# the first restart's (within a label) and shifted into place before averaging
# (`group_registration=True`, `registration_max_shift=1`).

# %%
bn_net = make_lenet_digits(seed=0, batch_norm=True)
train_classifier(bn_net, X_train, y_train, epochs=3, seed=0)
bn_net.train()  # the client computes its gradient in training mode
x_batch, y_batch = X_test[[0, 1, 2, 3]], y_test[[0, 1, 2, 3]]
print("private batch labels:", y_batch.tolist())
batch_gradients = shared_gradient(bn_net, x_batch, y_batch)

plain = GradientInversion_Attack(bn_net, (1, 8, 8), optimize_label=False, num_iteration=20, seed=0)
x_plain, _ = plain.attack(batch_gradients, batch_size=4)
gi = GradientInversion_Attack(bn_net, (1, 8, 8), optimize_label=False, bn_reg_coef=0.01,
                              bn_reg_layers=bn_net.bn_layers, num_iteration=20, seed=0)
x_gi, y_gi = gi.attack(batch_gradients, batch_size=4)
print(f"without the BN prior: MSE {reconstruction_mse(x_plain, x_batch):.3g};"
      f" with it: MSE {reconstruction_mse(x_gi, x_batch):.3g}, labels {y_gi.tolist()}")
assert sorted(y_gi.tolist()) == sorted(y_batch.tolist())
assert reconstruction_mse(x_gi, x_batch) < 0.1 * reconstruction_mse(x_plain, x_batch)

group = GradientInversion_Attack(bn_net, (1, 8, 8), optimize_label=False, bn_reg_coef=0.01,
                                 bn_reg_layers=bn_net.bn_layers, group_num=2, gc_reg_coef=0.01, num_iteration=6, seed=0)
x_group, _ = group.attack(batch_gradients, batch_size=4)
print(f"2 consistent restarts, averaged: MSE {reconstruction_mse(x_group, x_batch):.3g}")
assert reconstruction_mse(x_group, x_batch) < 0.1 * reconstruction_mse(x_plain, x_batch)

# %% [markdown]
# ## The malicious server inside FedAVG (paper Code 7 / S-14)
#
# A FedAVG client uploads `(θ_start − θ_end) / lr`. After one local SGD step at the client's `lr`
# this is exactly its batch gradient at the global model — which the server still holds when it
# receives. Each client here holds one digit and does one step per round.

# %%
from aijack_lab.attack import GradientInversionAttackServerManager
from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer

NN = lambda: make_lenet_digits(seed=0)  # noqa: E731
input_shape = (1, 8, 8)
dataloaders = [[(X_test[i:i + 1], y_test[i:i + 1])] for i in range(2)]

manager = GradientInversionAttackServerManager(input_shape, distancename="l2", num_iteration=20)
DLGFedAVGServer = manager.attach(FedAVGServer)

clients = [FedAVGClient(NN(), user_id=0, lr=1.0), FedAVGClient(NN(), user_id=1, lr=1.0)]
server = DLGFedAVGServer(clients, NN(), lr=1.0)
optimizers = [torch.optim.SGD(c.parameters(), lr=1.0) for c in clients]

api = FedAVGAPI(server, clients, criterion, optimizers, dataloaders, num_communication=2)
api.run()

for rnd, results in enumerate(server.attack_results):
    for cid, (x_rec, y_rec) in results.items():
        err = reconstruction_mse(x_rec, X_test[cid:cid + 1])
        print(f"round {rnd}, client {cid}: label {y_rec.tolist()} (true {y_test[cid].item()}), MSE {err:.2e}")
        assert y_rec.item() == y_test[cid].item() and err < 1e-3

# %% [markdown]
# ## The GAN attack (Hitaj et al., 2017): a malicious client draws a class it does not hold
#
# Client 0 holds no image of the target class. After each download it uses the shared model as a
# frozen discriminator and trains a generator until the model calls its images the target class.

# %%
from aijack_lab.attack import GANAttackClientManager
from aijack_lab.datasets import make_client_dataloaders, partition_iid
from aijack_lab.models import make_digits_model
from aijack_lab.models.generator import make_digits_generator
from aijack_lab.utils import predict

target_label = 6
parts = partition_iid(len(X_train), 3, seed=0)
parts[0] = parts[0][y_train[parts[0]] != target_label]
assert not (y_train[parts[0]] == target_label).any()
fl_loaders = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed=0)

generator = make_digits_generator(nz=16, seed=0)
gan_manager = GANAttackClientManager(target_label, generator, torch.optim.Adam(generator.parameters(), lr=1e-3),
                                     nz=16, gan_batch_size=64, gan_epoch=20, ignore_first_download=True, seed=0)
GANAttackFedAVGClient = gan_manager.attach(FedAVGClient)
fl_clients = [GANAttackFedAVGClient(make_digits_model("cnn", seed=0), user_id=0)]
fl_clients += [FedAVGClient(make_digits_model("cnn", seed=0), user_id=i) for i in (1, 2)]
fl_server = FedAVGServer(fl_clients, make_digits_model("cnn", seed=0))
fl_optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in fl_clients]
gan_api = FedAVGAPI(fl_server, fl_clients, criterion, fl_optimizers, fl_loaders, num_communication=4,
                    validation_dataloader=(X_test, y_test))
history = gan_api.run()

fakes = fl_clients[0].attack(200)
called_target = (predict(fl_server.server_model, fakes).argmax(1) == target_label).float().mean().item()
print(f"test accuracy {history[-1]['global_accuracy']:.3f}; generated images the shared model calls "
      f"'{target_label}': {called_target:.0%}")
assert called_target >= 0.9

# %% [markdown]
# ## The panels
#
# One panel covers the five gradient-inversion methods (pick one in **method**; the gallery opens it
# preset). The live view shows the dummy every few steps; **Stop** ends a long run. The **Code** tab
# holds the calls that reproduce the numbers.

# %%
from aijack_lab.widgets import GANAttackPanel, GradientInversionPanel

gi_panel = GradientInversionPanel(method="iDLG", num_iteration=20)
gi_panel.run()
assert gi_panel.result["mse"] < 0.1 * gi_panel.result["start_mse"]
gi_panel

# %%
gan_panel = GANAttackPanel(num_communication=3)
gan_panel.run()
assert gan_panel.result["final_target_rate"] >= 0.9
gan_panel

# %% [markdown]
# ## Exercises
#
# 1. Train `net` for a few epochs before the attack. Does DLG still work? Which method copes best?
# 2. In the panel, raise the batch size for DLG and GS. From what size does the reconstruction fail?
# 3. Give each FedAVG client 8 samples and 3 local steps: how much do the server's reconstructions degrade?
# 4. Replace `nn.Sigmoid` by `nn.ReLU` in a copy of `LeNetDigits`. Is iDLG's label still exact? Why?
# 5. Turn on the GAN panel's active variant. Do the generated images look more like real digits?
