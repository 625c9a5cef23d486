"Everything a fastprune user needs, fastai style: `from fastprune.all import *`"
from .data import *
from .models import *
from .report import *
from .surgery.graph import *
from .surgery.edit import *
from .core.granularity import *
from .core.criteria import *
from .core.schedules import *
from .sparsifier import *
from .callbacks.sparsify import *
from .callbacks.lottery import *
from .callbacks.das import *
from .studies.sensitivity import *
from .studies.transfer import *
from .cluster import *
from .callbacks.cluster import *
from .deploy import *
