# IRN's inter-pixel relation network (Ahn, Cho & Kwak, CVPR 2019,
# jiwoon-ahn/irn) as the affinity model of the "+RW" post-processing
# (issue #19): the AffinityNet demo config with PSA's embedding head
# replaced by IRN's class-boundary branch (BoundaryAffinityHead): a boundary
# map B on the stride-4 grid, pair affinity 1 - max B over the straight
# path between the two nodes, the same pair loss on the same confident
# labels, and the same sparse random walk. IRN's displacement-field branch
# (instance masks) is not part of it.
#
# Same pipeline, data, backbone, schedule and commands as
# affinitynet_effl0_1xb16-300it_demo-128x128.py (confident labels from
# tools/make_affinity_labels.py, then tools/train.py / tools/test.py with
# this config). Differences to IRN besides the backbone: the backbone is
# trained with the head (IRN freezes its ResNet-50 and trains the branches
# only) and only its three levels at strides 4, 8, 16 feed the head (IRN
# five, 160 channels).
_base_ = ['./affinitynet_effl0_1xb16-300it_demo-128x128.py']
model = dict(
    affinity_head=dict(
        _delete_=True,
        type='BoundaryAffinityHead',
        in_channels=(24, 40, 80),
        # IRN fc_edge1-5: 1x1 conv to 32 channels + GroupNorm(4, 32) + ReLU
        # per level, then fc_edge6: 1x1 conv to one boundary logit
        channels=32,
        norm_cfg=dict(type='GN', num_groups=4),
        act_cfg=dict(type='ReLU'),
        # IRN trains on pairs closer than 10 nodes (train_irn.py PathIndex
        # radius=10) and walks with radius 5. The parent keeps PSA's radius
        # 5 in grid nodes for its loss and its walk on this 32-node grid
        # and scales only the walk's steps (the reach below); the same is
        # done here: 10 and 5 nodes. Scaled to the grid (x 32 / 128) they
        # would be 2.5 and 1.25, paths of 2-3 nodes that seldom reach
        # across the uncertain band between confident fg and bg labels,
        # which is where the boundary is learned (negative pairs).
        radius=10,
        loss_weights=(0.25, 0.25, 0.5),
        # IRN propagate_to_edge walks cams * (1 - B)
        weight_cams_by_boundary=True),
    test_cfg=dict(
        # IRN EdgeDisplacement: boundary logits averaged with those of the
        # mirrored image before the sigmoid
        flip=True,
        radius=5,
        # IRN run_sample.py --beta 10 (PSA: 8)
        beta=10.0,
        # IRN's 2 ** 8 = 256 steps at radius 5 on a 128-node grid, as the
        # parent's reach: 16 steps on this 32-node grid
        n_steps=dict(reach=0.4127),
        # IRN's background: walked fg CAMs / their max vs a constant. IRN's
        # 0.25 (sem_seg_bg_thres) is for VOC CAMs; the parent's 0.55 is the
        # demo CAM baseline's seed threshold (dev seeds) and is kept
        bg_mode='const',
        bg_thr=0.55))
# Its own "+RW" row of the CamGuide demo table, beside the AffinityNet row:
# the same parent (the full CamGuide model's seeds), a network of its own
# trained with the same 300 x 16 images stated beyond the budget.
wsss_row = dict(
    table='camguide',
    name='Our + RW (IRN boundary)',
    parent='configs/camguide/camguide-stage3_effl0_1xb32-300it_demo-128x128.py',
    refine='random_walk',
    change=['*'],
    extra_images=16000 + 9600 + 4800)
