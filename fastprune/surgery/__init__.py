"The filter-surgery engine: coupling groups (`graph`, with its rule registries in `rules`) and exact removal/growth of units (`edit`), on plain `nn.Module`s"
from .groups import *
from .rules import *
from .graph import *
from .edit import *
from .attention import *
