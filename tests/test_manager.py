"""BaseManager.attach returns a new subclass; attaching two managers composes; the base is untouched."""
import pytest

from aijack_lab.manager import BaseManager, attached_managers


class Base:
    def upload(self):
        return [1.0, 2.0]


class Doubler(BaseManager):
    def extend(self, cls):
        class _Doubled(cls):
            def upload(self):
                return [2 * v for v in super().upload()]

        return _Doubled


class Shift(BaseManager):
    def __init__(self, shift):
        super().__init__(shift=shift)
        self.shift = shift

    def extend(self, cls):
        manager = self

        class _Shifted(cls):
            def upload(self):
                return [v + manager.shift for v in super().upload()]

        return _Shifted


def test_attach_returns_subclass_and_leaves_base_alone():
    Extended = Doubler().attach(Base)
    assert issubclass(Extended, Base) and Extended is not Base
    assert Extended().upload() == [2.0, 4.0]
    assert Base().upload() == [1.0, 2.0]


def test_two_managers_compose_in_attach_order():
    shift, double = Shift(10), Doubler()
    both = shift.attach(double.attach(Base))
    assert both().upload() == [12.0, 14.0]  # doubled first, then shifted
    other_order = double.attach(shift.attach(Base))
    assert other_order().upload() == [22.0, 24.0]
    assert attached_managers(both) == (double, shift)


def test_attach_rejects_instances_and_bad_extensions():
    with pytest.raises(TypeError, match="expects a class"):
        Doubler().attach(Base())

    class Broken(BaseManager):
        def extend(self, cls):
            return cls

    with pytest.raises(TypeError, match="new subclass"):
        Broken().attach(Base)


def test_manager_works_on_fedavg_client():
    import torch

    from aijack_lab.collaborative import FedAVGClient

    class ZeroUpload(BaseManager):
        def extend(self, cls):
            class _Zero(cls):
                def upload(self):
                    return [torch.zeros_like(t) for t in super().upload()]

            return _Zero

    Client = ZeroUpload().attach(FedAVGClient)
    client = Client(torch.nn.Linear(2, 1), user_id=3)
    assert client.user_id == 3
    assert all(torch.count_nonzero(t) == 0 for t in client.upload())
