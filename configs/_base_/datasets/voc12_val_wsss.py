# dataset settings: as voc12aug_wsss.py, but val/test on the official VOC
# 2012 ``val`` split (1,449 images), e.g. for the final segmentation model
# trained on pseudo labels.
_base_ = './voc12aug_wsss.py'

val_dataloader = dict(dataset=dict(ann_file='ImageSets/Segmentation/val.txt'))
test_dataloader = val_dataloader
