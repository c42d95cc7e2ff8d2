"""The GAN attack of a malicious FL client (Hitaj, Ateniese and Perez-Cruz, CCS 2017).

``GANAttackClientManager(target_label, generator, generator_optimizer, ...).attach(FedAVGClient)``
returns a client class that behaves like an honest client but, after every download of the
shared model, trains a local generator so that the shared model (used as a frozen
discriminator) classifies its images as ``target_label``, a class whose data the attacker does
not hold. ``client.attack(n)`` returns ``n`` generated images.

With ``fake_label`` set (Hitaj et al.'s active variant), the attacker also trains the shared
model on its generated images labelled ``fake_label``: the honest clients, who hold the real
``target_label`` data, then have to teach the model what separates real ``target_label`` images
from the generator's, which pushes the generator towards realistic ones.
"""
import copy
from typing import Callable, Iterable, List, Optional, Sequence

import torch
from torch import nn

from ...manager import BaseManager
from ...utils.validation import check_positive_int


class _WithFakes:
    """Iterate a dataloader, appending ``k`` generated images labelled ``fake_label`` to each batch."""

    def __init__(self, loader: Iterable, client, k: int, fake_label: int):
        self.loader, self.client, self.k, self.fake_label = loader, client, k, fake_label

    def __iter__(self):
        for data, target in self.loader:
            fake = self.client.attack(self.k).to(data.dtype).reshape((self.k,) + tuple(data.shape[1:]))
            labels = torch.full((self.k,), self.fake_label, dtype=target.dtype)
            yield torch.cat([data, fake]), torch.cat([target, labels])

    def __len__(self):
        return len(self.loader)


class GANAttackClientManager(BaseManager):
    """Attach the GAN attack to a client class (``FedAVGClient`` or a subclass).

    Args:
        target_label: the class whose images the attacker wants to see.
        generator: a module mapping noise of shape ``(n, *noise_shape)`` to inputs of the model.
        generator_optimizer: an optimizer over ``generator.parameters()``.
        generator_criterion: loss of the generator, called as ``criterion(model(fake), target)``.
        nz: noise dimension.
        noise_shape: shape of one noise vector (default ``(nz,)``; ``(nz, 1, 1)`` for DCGAN).
        device: where the generator runs.
        gan_batch_size: generated images per generator step.
        gan_epoch: generator steps after each download.
        gan_log_interval: print the generator loss every this many steps (0: silent).
        ignore_first_download: skip generator training on the first (untrained) global model.
        fake_label: if set, label generated images with this class in local training (active attack).
        fake_batch_size: generated images added to each local batch when ``fake_label`` is set.
        seed: seeds the noise.

    The attached client keeps ``generator_losses`` (the last generator loss after each download)
    and ``discriminator`` (its frozen copy of the latest shared model).
    """

    def __init__(
        self,
        target_label: int,
        generator: nn.Module,
        generator_optimizer: torch.optim.Optimizer,
        generator_criterion: Callable = nn.CrossEntropyLoss(),
        nz: int = 100,
        noise_shape: Optional[Sequence[int]] = None,
        device: str = "cpu",
        gan_batch_size: int = 64,
        gan_epoch: int = 1,
        gan_log_interval: int = 0,
        ignore_first_download: bool = False,
        fake_label: Optional[int] = None,
        fake_batch_size: int = 8,
        seed: int = 0,
    ):
        super().__init__(target_label, generator, generator_optimizer)
        check_positive_int("target_label", target_label, allow_zero=True)
        if not isinstance(generator, nn.Module):
            raise TypeError(f"generator must be a torch.nn.Module, got {type(generator).__name__}")
        if not isinstance(generator_optimizer, torch.optim.Optimizer):
            raise TypeError(f"generator_optimizer must be a torch.optim.Optimizer, got {type(generator_optimizer).__name__}")
        if not callable(generator_criterion):
            raise TypeError("generator_criterion must be callable, e.g. nn.CrossEntropyLoss()")
        self.target_label = target_label
        self.generator = generator
        self.generator_optimizer = generator_optimizer
        self.generator_criterion = generator_criterion
        self.nz = check_positive_int("nz", nz)
        self.noise_shape = (self.nz,) if noise_shape is None else tuple(int(s) for s in noise_shape)
        self.device = device
        self.gan_batch_size = check_positive_int("gan_batch_size", gan_batch_size)
        self.gan_epoch = check_positive_int("gan_epoch", gan_epoch)
        self.gan_log_interval = check_positive_int("gan_log_interval", gan_log_interval, allow_zero=True)
        self.ignore_first_download = bool(ignore_first_download)
        if fake_label is not None:
            check_positive_int("fake_label", fake_label, allow_zero=True)
            if fake_label == target_label:
                raise ValueError("fake_label must differ from target_label")
        self.fake_label = fake_label
        self.fake_batch_size = check_positive_int("fake_batch_size", fake_batch_size)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = seed

    def extend(self, cls):
        manager = self

        class GANAttackClientWrapper(cls):
            """A client that trains a generator against the shared model after each download."""

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.target_label = manager.target_label
                self.generator = manager.generator.to(manager.device)
                self.generator_optimizer = manager.generator_optimizer
                self.generator_criterion = manager.generator_criterion
                self.discriminator = copy.deepcopy(self.model).to(manager.device)
                for p in self.discriminator.parameters():
                    p.requires_grad_(False)
                self.noise_generator = torch.Generator()
                self.noise_generator.manual_seed(manager.seed)
                self.generator_losses: List[float] = []
                self.is_params_initialized = False
                self._check_target_label()

            def _check_target_label(self) -> None:
                probe = torch.zeros((1,) + manager.noise_shape)
                with torch.no_grad():
                    try:
                        out = self.discriminator(self.generator(probe))
                    except Exception as exc:
                        raise ValueError(f"the generator's output does not fit the client's model: {exc}") from exc
                num_classes = out.shape[-1]
                for name, label in (("target_label", manager.target_label), ("fake_label", manager.fake_label)):
                    if label is not None and label >= num_classes:
                        raise ValueError(f"{name}={label} but the model has {num_classes} classes")

            def noise(self, n: int) -> torch.Tensor:
                return torch.randn((n,) + manager.noise_shape, generator=self.noise_generator).to(manager.device)

            def update_discriminator(self) -> None:
                self.discriminator.load_state_dict(self.model.state_dict())
                self.discriminator.eval()

            def update_generator(self, batch_size: int = 64, epoch: int = 1, log_interval: int = 0) -> float:
                """``epoch`` generator steps pushing the discriminator's output towards ``target_label``."""
                self.generator.train()
                label = torch.full((batch_size,), manager.target_label, dtype=torch.int64, device=manager.device)
                loss_value = float("nan")
                for i in range(1, epoch + 1):
                    self.generator_optimizer.zero_grad()
                    fake = self.generator(self.noise(batch_size))
                    loss = self.generator_criterion(self.discriminator(fake), label)
                    loss.backward()
                    self.generator_optimizer.step()
                    loss_value = loss.item()
                    if log_interval and i % log_interval == 0:
                        print(f"generator step {i}: loss {loss_value:.4f}")
                return loss_value

            def download(self, *args, **kwargs):
                super().download(*args, **kwargs)
                if manager.ignore_first_download and not self.is_params_initialized:
                    self.is_params_initialized = True
                    return
                self.is_params_initialized = True
                self.update_discriminator()
                self.generator_losses.append(
                    self.update_generator(manager.gan_batch_size, manager.gan_epoch, manager.gan_log_interval)
                )

            def local_train(self, local_epoch, criterion, trainloader, optimizer, communication_id: int = 0):
                if manager.fake_label is not None and self.is_params_initialized:
                    trainloader = _WithFakes(trainloader, self, manager.fake_batch_size, manager.fake_label)
                return super().local_train(local_epoch, criterion, trainloader, optimizer, communication_id)

            def attack(self, n: int, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
                """``n`` images from the generator (no gradient). Pass ``noise`` of shape
                ``(n, *noise_shape)`` to render fixed inputs without drawing from the client's stream."""
                check_positive_int("n", n)
                if noise is None:
                    noise = self.noise(n)
                elif tuple(noise.shape) != (n,) + manager.noise_shape:
                    raise ValueError(f"noise must have shape {(n,) + manager.noise_shape}, got {tuple(noise.shape)}")
                self.generator.eval()
                with torch.no_grad():
                    return self.generator(noise.to(manager.device))

        return GANAttackClientWrapper
