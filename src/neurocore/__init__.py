"""neurocore: train energy-efficient networks and compile them onto models of neuromorphic cores.

Sub-packages, one per concern:

- :mod:`neurocore.data`      data sets (digits, MNIST/IDX, CIFAR-10) as in-memory tensors
- :mod:`neurocore.layers`    the layer registry and the model builder
- :mod:`neurocore.neurons`   activation and neuron models
- :mod:`neurocore.training`  the trainer, its hooks, schedules and checkpoints
- :mod:`neurocore.hardware`  hardware and energy models
- :mod:`neurocore.analysis`  cost inspection and run reports
"""

from neurocore.errors import NeurocoreError

__version__ = "0.1.0"
__all__ = ["NeurocoreError", "__version__"]
