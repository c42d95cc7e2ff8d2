"""Abstract federated parties and the API that drives them."""
from .base import BaseClient, BaseServer, BaseFedAPI, RoundInfo
from .params import named_parameters_dict, parameters_to_list, load_parameters, check_finite_update, update_nbytes

__all__ = [
    "BaseClient",
    "BaseServer",
    "BaseFedAPI",
    "RoundInfo",
    "named_parameters_dict",
    "parameters_to_list",
    "load_parameters",
    "check_finite_update",
    "update_nbytes",
]
