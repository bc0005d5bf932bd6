"""symgrad.optim: PyTorch's optimizers (SGD, Adam, AdamW, RMSprop, Adagrad) with its update
formulas, parameter groups and state_dict, and learning-rate schedulers (symgrad.optim.lr_scheduler). The same
update runs eagerly in `step()` and compiled into a whole training step by `sg.compile_step`."""
from symgrad.optim import lr_scheduler
from symgrad.optim.adam import Adam, AdamW
from symgrad.optim.optimizer import Optimizer, required
from symgrad.optim.rmsprop import Adagrad, RMSprop
from symgrad.optim.sgd import SGD

__all__ = ["Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "lr_scheduler", "required"]
