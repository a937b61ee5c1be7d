# Fully supervised upper bound for the demo: the same model and schedule as
# the pseudo-label config, trained on the real train masks.
_base_ = ['./deeplabv3plus_effl0-d16_1xb16-800it_demo-pseudo-128x128.py']
train_dataloader = dict(
    dataset=dict(
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass')))
