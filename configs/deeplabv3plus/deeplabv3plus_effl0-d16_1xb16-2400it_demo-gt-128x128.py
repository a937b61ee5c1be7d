# Fully supervised upper bound of the results bed: the same model and
# schedule as the 2,400-iteration pseudo-label config, on the real masks.
_base_ = ['./deeplabv3plus_effl0-d16_1xb16-2400it_demo-pseudo-128x128.py']
train_dataloader = dict(
    dataset=dict(
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass')))
