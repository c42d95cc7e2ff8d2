"""Attackers are objects with ``attack(...)``; each declares and validates its parameters in one place."""
import abc
from typing import Any, Dict, Tuple


class BaseAttacker(abc.ABC):
    """Base of every attacker.

    ``attack_params`` names the constructor arguments that configure the attack (a panel or a
    test can list them); ``_check_params`` validates them once, at construction.
    """

    attack_params: Tuple[str, ...] = ()

    def __init__(self, target_model=None):
        self.target_model = target_model

    def get_params(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in self.attack_params}

    def _check_params(self) -> None:
        """Raise ValueError/TypeError naming the bad parameter; subclasses extend it."""

    @abc.abstractmethod
    def attack(self, *args, **kwargs):
        """Run the attack."""
