"""The GAN attack (Hitaj et al. 2017): a malicious FedAVG client learns to generate a class it does not hold."""
import pytest
import torch
from torch import nn

from aijack_lab.attack import GANAttackClientManager
from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import make_client_dataloaders, partition_iid
from aijack_lab.models import make_digits_model, train_digits_model
from aijack_lab.models.generator import make_digits_generator
from aijack_lab.utils import predict

TARGET = 6


def run_gan_attack(digits, rounds=4, fake_label=None, num_classes=10):
    x, y, x_test, y_test = digits
    parts = partition_iid(len(x), 3, seed=0)
    parts[0] = parts[0][y[parts[0]] != TARGET]  # the attacker holds no image of the target class
    loaders = make_client_dataloaders(x, y, parts, batch_size=32, seed=0)
    generator = make_digits_generator(nz=16, seed=0)
    manager = GANAttackClientManager(
        TARGET, generator, torch.optim.Adam(generator.parameters(), lr=1e-3), nz=16,
        gan_batch_size=64, gan_epoch=20, ignore_first_download=True, fake_label=fake_label, seed=0,
    )
    GANClient = manager.attach(FedAVGClient)
    clients = [GANClient(make_digits_model("cnn", seed=0, num_classes=num_classes), user_id=0)]
    clients += [FedAVGClient(make_digits_model("cnn", seed=0, num_classes=num_classes), user_id=i) for i in (1, 2)]
    server = FedAVGServer(clients, make_digits_model("cnn", seed=0, num_classes=num_classes))
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    before = clients[0].attack(200)
    api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, loaders,
                    num_communication=rounds, validation_dataloader=(x_test, y_test))
    api.run()
    return server, clients, before, api


def target_rate(model, images):
    return (predict(model, images).argmax(1) == TARGET).float().mean().item()


def test_generator_produces_images_the_shared_model_calls_the_target(digits):
    x, y, _, _ = digits
    server, clients, before, api = run_gan_attack(digits)
    attacker = clients[0]
    fake = attacker.attack(200)
    assert fake.shape == (200, 1, 8, 8) and 0.0 <= fake.min() and fake.max() <= 1.0
    assert target_rate(server.server_model, before) < 0.2  # the untrained generator is not the target
    assert target_rate(server.server_model, fake) >= 0.9
    assert len(attacker.generator_losses) == 4  # one generator update per download after the first
    # the images carry the class's look, not just the shared model's verdict: they lie closest to the
    # mean image of the target class, and a classifier trained apart from the federation calls them so
    x, y, _, _ = digits
    means = torch.stack([x[y == k].mean(0) for k in range(10)])
    nearest = ((fake[:, None] - means[None]) ** 2).flatten(2).mean(-1).argmin(1)
    assert (nearest == TARGET).float().mean().item() >= 0.9
    independent = train_digits_model("mlp", epochs=10, seed=1)
    assert target_rate(independent, fake) >= 0.5
    assert api.history[-1]["global_accuracy"] > 0.8  # the federation still learns


def test_active_variant_trains_the_shared_model_on_fakes(digits):
    _, _, x_test, _ = digits
    server, clients, _, _ = run_gan_attack(digits, rounds=3, fake_label=10, num_classes=11)
    fake = clients[0].attack(200)
    # the shared model learned the extra "fake" class from the attacker's injected images only:
    # it gives that class far more probability on generated images than on real digits
    p_fake = predict(server.server_model, fake).softmax(1)[:, 10].mean().item()
    p_real = predict(server.server_model, x_test).softmax(1)[:, 10].mean().item()
    assert p_fake > 5 * p_real


def test_same_seed_same_generated_images(digits):
    _, c1, _, _ = run_gan_attack(digits, rounds=2)
    _, c2, _, _ = run_gan_attack(digits, rounds=2)
    assert torch.equal(c1[0].attack(5), c2[0].attack(5))


def test_bad_arguments():
    gen = make_digits_generator(nz=16, seed=0)
    opt = torch.optim.Adam(gen.parameters())
    with pytest.raises(TypeError, match="generator must be"):
        GANAttackClientManager(3, "gen", opt)
    with pytest.raises(TypeError, match="generator_optimizer"):
        GANAttackClientManager(3, gen, None)
    with pytest.raises(ValueError, match="target_label"):
        GANAttackClientManager(-1, gen, opt, nz=16)
    with pytest.raises(ValueError, match="fake_label must differ"):
        GANAttackClientManager(3, gen, opt, nz=16, fake_label=3)
    Client = GANAttackClientManager(12, gen, opt, nz=16).attach(FedAVGClient)
    with pytest.raises(ValueError, match="target_label=12 but the model has 10 classes"):
        Client(make_digits_model("cnn", seed=0))
    Client = GANAttackClientManager(3, gen, opt, nz=8).attach(FedAVGClient)
    with pytest.raises(ValueError, match="generator's output does not fit"):
        Client(make_digits_model("cnn", seed=0))
