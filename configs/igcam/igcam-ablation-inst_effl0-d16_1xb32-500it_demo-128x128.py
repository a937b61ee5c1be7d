# IG-CAM ablation on the demo bed, row "+Inst": the Base row plus instance
# guidance (IG-CAM sec. 3.4): Selective Search proposals of each image
# (tools/generate_proposals.py, written under the data root), 64 per image,
# attention-MIL weights over the proposals. The proposals follow every
# geometric transform (mmseg.Resize as the resize type of RandomResize).
# Selection (issue #18 item 2, chosen on the dev seeds): 64 drawn at random
# from all boxes in training, the top 64 by rank at test. The one-rule
# alternative (rank in both) scored 1.5 / 1.0 seed mIoU lower on dev seeds
# 0 / 1 (33.9 / 33.1 against 35.4 / 34.0); it is the search row
# configs/_search_/igcam/igcam-search-inst-rank_*.
_base_ = ['./igcam-ablation-base_effl0-d16_1xb32-500it_demo-128x128.py']
proposal_dir = 'data/demo/proposals/ss-fast'
model = dict(cam_head=dict(num_proposals=64, train_select='random'))
train_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    dict(type='LoadProposals', proposal_dir=proposal_dir, max_num=2000),
    dict(
        type='mmseg.RandomResize',
        scale=(128, 128),
        ratio_range=(0.75, 1.5),
        keep_ratio=True,
        resize_type='mmseg.Resize'),
    dict(type='mmseg.RandomCrop', crop_size=(128, 128)),
    dict(type='mmseg.RandomFlip', prob=0.5),
    dict(type='PackWSSSInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', _scope_='mmseg'),
    dict(type='LoadProposals', proposal_dir=proposal_dir, max_num=2000),
    dict(type='LoadAnnotations', _scope_='mmseg'),
    dict(type='PackWSSSInputs', allow_missing_labels=True),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
wsss_row = dict(
    table='igcam',
    name='+Inst',
    parent=
    'configs/igcam/igcam-ablation-base_effl0-d16_1xb32-500it_demo-128x128.py',
    change=[
        'model.cam_head.num_proposals', 'model.cam_head.train_select',
        'proposal_dir', 'train_pipeline',
        'test_pipeline', 'train_dataloader.dataset.pipeline',
        'test_dataloader.dataset.pipeline'
    ])
