# Copyright (c) mmwsss contributors.
"""mmwsss: weakly supervised semantic segmentation on MMSegmentation."""
import mmcv
import mmengine
import mmseg
from mmengine.utils import digit_version

from .version import __version__, version_info

MMCV_MIN = '2.0.0'
MMCV_MAX = '2.2.0'
MMENGINE_MIN = '0.10.3'
MMENGINE_MAX = '1.0.0'
MMSEG_MIN = '1.2.1'
MMSEG_MAX = '1.3.0'

def _check(name: str, version: str, low: str, high: str) -> None:
    v = digit_version(version)
    assert digit_version(low) <= v < digit_version(high), (
        f'{name}=={version} is used but incompatible. '
        f'Please install {name}>={low}, <{high}.')

_check('mmcv', mmcv.__version__, MMCV_MIN, MMCV_MAX)
_check('mmengine', mmengine.__version__, MMENGINE_MIN, MMENGINE_MAX)
_check('mmsegmentation', mmseg.__version__, MMSEG_MIN, MMSEG_MAX)

# Local checkpoints load with torch's weights-only unpickler (see
# mmwsss/utils/checkpoint.py); never by disabling the check process-wide.
from .utils.checkpoint import register_safe_loader  # noqa: E402

register_safe_loader()
__all__ = ['__version__', 'version_info']
