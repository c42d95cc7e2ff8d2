"""``BaseFLKnowledgeDistillationAPI``: what FedMD, FedGEMS and DSFL share.

These protocols exchange predictions on a public dataset instead of model parameters. The
base API holds the public and private data, trains clients on either, scores the server and
clients, counts the bytes that cross, and records one ``history`` entry per round with the
same keys as ``FedAVGAPI`` (``round``, ``client_losses``, ``global_accuracy``, ``seconds``,
``bytes_uploaded``) plus ``client_accuracies``, ``mean_client_accuracy`` and ``bytes_downloaded``.

Clients' uploads are checked on receipt: NaN/inf predictions stop the run with a ValueError naming
the client (nothing of that round is aggregated).

``engine=`` (as ``FedAVGAPI``): the client-side phases (training on public or private data, computing
uploads, distillation) run as jobs through ``engine.run_on_clients`` (in this process by default, or
on ipyparallel engines); the server stays here. Each job is a module-level function of the client,
its optimizer and explicit seeds, so any engine gives the numbers of the in-process run.
"""
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from ...engines import CLIENT_LOADER, resolve_engine
from ...utils.metrics import evaluate_accuracy
from ...utils.progress import ProgressCallback
from ...utils.validation import check_positive_int
from ..core import BaseClient, BaseFedAPI, check_finite_update, update_nbytes


class PublicData:
    """The public dataset as fixed-order tensors ``x`` (and ``y`` or None when unlabeled).

    Every party iterates it in the same order, so row ``i`` of each party's logits refers to the
    same sample even when the user's public dataloader shuffles.
    """

    def __init__(self, source, batch_size: Optional[int] = None):
        x, y = self._tensors(source)
        if len(x) == 0:
            raise ValueError("the public dataset is empty")
        self.x, self.y = x, y
        if batch_size is None:
            batch_size = getattr(source, "batch_size", None) or 64
        self.batch_size = check_positive_int("batch_size", batch_size)

    @staticmethod
    def _tensors(source) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        if isinstance(source, PublicData):
            return source.x, source.y
        if isinstance(source, (tuple, list)) and source and all(torch.is_tensor(t) for t in source):
            parts = list(source)
        else:
            ds = getattr(source, "dataset", None)
            if isinstance(ds, TensorDataset):
                parts = list(ds.tensors)
            elif ds is not None:
                items = [ds[i] for i in range(len(ds))]
                if not items:
                    raise ValueError("the public dataset is empty")
                items = [it if isinstance(it, (tuple, list)) else (it,) for it in items]
                parts = [torch.stack([torch.as_tensor(it[k]) for it in items]) for k in range(len(items[0]))]
            else:
                raise TypeError(
                    "public_dataloader must be a DataLoader, a PublicData or a tuple of tensors, "
                    f"got {type(source).__name__}"
                )
        x = parts[0]
        y = parts[1] if len(parts) > 1 else None
        if y is not None and len(y) != len(x):
            raise ValueError(f"public data has {len(x)} inputs but {len(y)} labels")
        return x, y

    def __len__(self) -> int:
        return len(self.x)

    def batches(self, shuffle_seed: Optional[int] = None):
        """``(indices, x)`` batches; shuffled by ``shuffle_seed`` when given."""
        n = len(self.x)
        if shuffle_seed is None:
            order = torch.arange(n)
        else:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(int(shuffle_seed)))
        for i in range(0, n, self.batch_size):
            idx = order[i : i + self.batch_size]
            yield idx, self.x[idx]

    def loader(self, shuffle_seed: int = 0) -> DataLoader:
        """A labeled shuffling DataLoader over the public data (for supervised transfer learning)."""
        if self.y is None:
            raise ValueError("the public dataset has no labels")
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(int(shuffle_seed)))


@torch.no_grad()
def logits_on(model: torch.nn.Module, public: PublicData) -> torch.Tensor:
    """``model``'s outputs on every public sample, in order (eval mode, mode restored)."""
    was = model.training
    model.eval()
    try:
        return torch.cat([model(x) for _, x in public.batches()])
    finally:
        model.train(was)


def default_server_optimizer(server_model: Optional[torch.nn.Module], server_optimizer=None):
    """``server_optimizer``, else the distillation protocols' default for the server's model: Adam,
    lr 1e-3 (None when there is no server model)."""
    if server_optimizer is None and server_model is not None:
        server_optimizer = torch.optim.Adam(server_model.parameters(), lr=1e-3)
    return server_optimizer


class DistillationClient(BaseClient):
    """What FedMD, FedGEMS and DSFL clients share: the public data (``public``), ``output_dim``,
    uploads and downloads of ``(n_public, output_dim)`` predictions checked on the way, and epochs of
    training on the public inputs (shuffled the same way by every protocol)."""

    def __init__(self, model: torch.nn.Module, public_dataloader, output_dim: int, batch_size: int,
                 user_id: int = 0, device: str = "cpu"):
        super().__init__(model, user_id=user_id)
        self.public_dataloader = public_dataloader
        self.public = PublicData(public_dataloader, batch_size=batch_size)
        self.output_dim = check_positive_int("output_dim", output_dim)
        self.device = device

    def public_logits(self) -> torch.Tensor:
        """The model's outputs on the public data, shape- and finiteness-checked."""
        logits = logits_on(self.model, self.public)
        if logits.dim() != 2 or logits.shape[1] != self.output_dim:
            raise ValueError(
                f"client {self.user_id}: model outputs have shape {tuple(logits.shape[1:])}, expected ({self.output_dim},) "
                "(output_dim)"
            )
        check_finite_update([logits], f"client {self.user_id}")
        return logits

    def checked_download(self, values: torch.Tensor, what: str) -> torch.Tensor:
        """A detached copy of the server's per-public-sample ``values`` (``what`` names them in errors)."""
        expected = (len(self.public), self.output_dim)
        if values.shape != expected:
            raise ValueError(f"client {self.user_id}: {what} of shape {tuple(values.shape)}, expected {expected}")
        return values.detach().clone()

    def train_on_public(self, optimizer, epoch: int, seed: int, batch_loss: Callable) -> float:
        """``epoch`` epochs over the public inputs minimising ``batch_loss(indices, x)``; returns the last
        epoch's mean loss. The shuffle depends on ``seed``, the epoch and ``user_id``."""
        self.model.train()
        last = float("nan")
        for e in range(epoch):
            total, count = 0.0, 0
            for idx, x in self.public.batches(shuffle_seed=seed * 1009 + e * 31 + self.user_id):
                optimizer.zero_grad()
                loss = batch_loss(idx, x)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
                count += len(idx)
            last = total / count
        return last


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """``-Σ p log softmax(logits)`` averaged over the batch."""
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def supervised_epoch(model, loader, optimizer, criterion, device: str, who: str) -> float:
    """One supervised epoch of ``model`` over ``loader``; returns the mean loss per sample."""
    model.train()
    total, count = 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
        count += len(y)
    if count == 0:
        raise ValueError(f"{who} has an empty dataloader")
    return total / count


# -- client jobs (module-level so that engines in other processes import them by name) -------------
def train_supervised(client, optimizer, loader, epoch: int, criterion, device: str, who: str) -> float:
    """``epoch`` supervised epochs of ``client.model``; the last epoch's mean loss (NaN for 0 epochs)."""
    loss = float("nan")
    for _ in range(epoch):
        loss = supervised_epoch(client.model, loader, optimizer, criterion, device, who)
    return loss


def train_then_upload(client, optimizer, loader, epoch: int, criterion, device: str, who: str):
    """Private epochs (none when ``epoch`` is 0), then the client's upload: ``(loss, upload)``."""
    loss = train_supervised(client, optimizer, loader, epoch, criterion, device, who) if epoch else float("nan")
    return loss, client.upload()


class _Uploaded:
    """A client as the server sees it this round: ``upload()`` returns what it computed on its engine."""

    def __init__(self, client, payload):
        self._client = client
        self._payload = payload

    def upload(self):
        return self._payload

    def __getattr__(self, name):
        return getattr(self._client, name)


class BaseFLKnowledgeDistillationAPI(BaseFedAPI):
    """Common base of ``FedMDAPI``, ``FedGEMSAPI`` and ``DSFLAPI``.

    Args:
        server, clients: the parties; clients may have different architectures.
        public_dataloader: the public data every party can see (labeled or not).
        local_dataloaders: one private dataloader per client, or None.
        validation_dataloader: ``(x, y)`` tensors or a dataloader to score the server and clients.
        criterion: the supervised loss.
        num_communication: rounds.
        client_optimizers: one per client (default: Adam, lr 1e-3, for each client).
        on_round, progress: as ``FedAVGAPI``.
        engine: where the client-side phases run: None/"inprocess", or an engine object such as
            ``IPyParallelEngine(n_engines=2)`` (see ``aijack_lab.engines``); same numbers either way.
    """

    def __init__(
        self,
        server,
        clients: List,
        public_dataloader,
        local_dataloaders: Optional[Sequence],
        validation_dataloader,
        criterion,
        num_communication: int,
        device: str = "cpu",
        client_optimizers: Optional[Sequence] = None,
        custom_action: Optional[Callable] = None,
        on_round=None,
        progress: Optional[ProgressCallback] = None,
        engine=None,
    ):
        super().__init__(on_round=on_round, progress=progress)
        name = type(self).__name__
        if clients is None or len(clients) == 0:
            raise ValueError(f"{name} needs at least one client")
        n = len(clients)
        if public_dataloader is None:
            public_dataloader = getattr(clients[0], "public_dataloader", None)
            if public_dataloader is None:
                raise ValueError(f"{name} needs a public_dataloader (or clients that hold one)")
        self.server = server
        self.clients = list(clients)
        self.client_num = n
        self.public_dataloader = public_dataloader
        self.public = PublicData(public_dataloader)
        if local_dataloaders is not None and len(local_dataloaders) != n:
            raise ValueError(f"got {len(local_dataloaders)} local_dataloaders for {n} clients")
        self.local_dataloaders = list(local_dataloaders) if local_dataloaders is not None else None
        self.validation_dataloader = validation_dataloader
        self.criterion = criterion if criterion is not None else torch.nn.CrossEntropyLoss()
        self.num_communication = check_positive_int("num_communication", num_communication)
        self.device = device
        if client_optimizers is None:
            client_optimizers = [torch.optim.Adam(c.model.parameters(), lr=1e-3) for c in self.clients]
        if len(client_optimizers) != n:
            raise ValueError(f"got {len(client_optimizers)} client_optimizers for {n} clients")
        self.client_optimizers = list(client_optimizers)
        self.custom_action = custom_action
        self.engine = resolve_engine(engine)
        if not callable(getattr(self.engine, "run_on_clients", None)):
            raise TypeError(f"engine must provide run_on_clients(api, jobs), got {type(self.engine).__name__}")
        self._bytes_up = 0
        self._bytes_down = 0

    # -- training ------------------------------------------------------------------------------
    def run_clients(self, jobs, task: str, round=None) -> list:
        """Run client jobs ``(i, fn, args)`` through the engine (see ``aijack_lab.engines``)."""
        return self.engine.run_on_clients(self, jobs, task=task, round=round)

    def engine_resident(self, i: int) -> list:
        """What of client ``i`` stays fixed during a run (its public data): an engine may keep it where
        the client runs rather than ship it with every job."""
        client = self.clients[i]
        public = getattr(client, "public", None)
        objs = [public, getattr(client, "public_dataloader", None)]
        if isinstance(public, PublicData):
            objs += [public.x, public.y]
        unique = {id(o): o for o in objs if o is not None}
        return list(unique.values())

    def _who(self, i: int) -> str:
        return f"client {getattr(self.clients[i], 'user_id', i)}"

    def train_client(self, public: bool = True, epoch: int = 1, seed: int = 0) -> List[float]:
        """Supervised epochs for every client on the labeled public data (``public=True``) or on its
        private dataloader; returns each client's mean loss over the last epoch."""
        if not public and self.local_dataloaders is None:
            raise ValueError("no local_dataloaders were given")
        jobs = [(i, train_supervised, (self.public.loader(shuffle_seed=seed + i) if public else CLIENT_LOADER,
                                       epoch, self.criterion, self.device, self._who(i)))
                for i in range(self.client_num)]
        return self.run_clients(jobs, "training on the public data" if public else "training on the private data")

    def client_uploads(self, com_cnt: int, private_epoch: int = 0):
        """Each client trains ``private_epoch`` epochs on its private data, then computes its upload:
        ``(losses, uploads)`` (losses NaN without private epochs)."""
        jobs = [(i, train_then_upload, (CLIENT_LOADER if private_epoch else None, private_epoch, self.criterion,
                                        self.device, self._who(i)))
                for i in range(self.client_num)]
        results = self.run_clients(jobs, "local training and upload" if private_epoch else "upload", round=com_cnt)
        return [loss for loss, _ in results], [upload for _, upload in results]

    def server_receive(self, uploads) -> None:
        """``server.receive()`` (with its checks) over the uploads the clients computed."""
        server = self.server
        original = server.clients
        by_client = {id(c): u for c, u in zip(self.clients, uploads)}
        server.clients = [_Uploaded(c, by_client[id(c)]) if id(c) in by_client else c for c in original]
        try:
            server.receive()
        finally:
            server.clients = original

    def _supervised_epoch(self, party, loader, optimizer, who: str) -> float:
        return supervised_epoch(party.model, loader, optimizer, self.criterion, self.device, who)

    # -- evaluation ----------------------------------------------------------------------------
    def score(self, dataloader=None, only_local: bool = False) -> dict:
        """``{"server_score": accuracy or None, "clients_score": [accuracy per client]}`` on ``dataloader``
        (default: the validation data)."""
        data = dataloader if dataloader is not None else self.validation_dataloader
        if data is None:
            return {"server_score": None, "clients_score": [None] * self.client_num}
        server_model = getattr(self.server, "server_model", None)
        server_score = None
        if server_model is not None and not only_local:
            server_score = evaluate_accuracy(server_model, data)
        return {"server_score": server_score, "clients_score": [evaluate_accuracy(c.model, data) for c in self.clients]}

    def local_score(self) -> List[float]:
        """Each client's accuracy on its own private data."""
        if self.local_dataloaders is None:
            raise ValueError("no local_dataloaders were given")
        return [evaluate_accuracy(c.model, dl) for c, dl in zip(self.clients, self.local_dataloaders)]

    # -- bookkeeping ---------------------------------------------------------------------------
    def count_upload(self, payloads) -> None:
        self._bytes_up += sum(update_nbytes([p]) for p in payloads)

    def count_download(self, payload, copies: int = 1) -> None:
        self._bytes_down += update_nbytes([payload]) * copies

    def record_round(self, com_cnt: int, client_losses: List[float], start: float, uploads=None, **extra) -> None:
        scores = self.score()
        server_score = scores["server_score"]
        clients_score = scores["clients_score"]
        info = {
            "round": com_cnt,
            "client_losses": list(client_losses),
            "global_accuracy": server_score,
            "client_accuracies": clients_score,
            "mean_client_accuracy": (sum(clients_score) / len(clients_score)) if clients_score and clients_score[0] is not None else None,
            "seconds": self._now() - start,
            "bytes_uploaded": self._bytes_up,
            "bytes_downloaded": self._bytes_down,
            "client_updates": uploads if uploads is not None else [],
        }
        info.update(extra)
        self._bytes_up = 0
        self._bytes_down = 0
        if self.custom_action is not None:
            self.custom_action(self)
        self._end_round(info, self.num_communication)
