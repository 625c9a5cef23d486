"The filter-surgery engine: coupling groups (`graph`) and exact removal/growth of units (`edit`), on plain `nn.Module`s"
from .graph import *
from .edit import *
