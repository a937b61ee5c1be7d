# Ablation (Table V, "Our**"): all stages without morphological operations
# (no closing of the DenseCRF targets) and without local consistency.
_base_ = ['./camguide-stage3-noloc_effl0_1xb32-300it_demo-128x128.py']
model = dict(heuristic_targets=dict(close_kernel=1))
wsss_row = dict(
    table='camguide',
    name='Our** (stage 3, no morphology)',
    parent='configs/camguide/camguide-stage2_effl0_teacher-effl2_1xb32-200it_demo-128x128.py',
    change=[
        'model.stage', 'model.teacher', 'model.cam_head.loss_cls.loss_weight',
        'model.refine_head', 'model.loss_reg', 'model.loss_crf',
        'model.loss_rw', 'model.loss_edge', 'model.loss_loc',
        'model.heuristic_targets', 'model.train_cfg', 'sizes',
        'camguide_stage3_sizes', 'teacher_checkpoint', 'stage1_work_dir',
        'stage2_work_dir', 'load_from', 'optim_wrapper', 'max_iters',
        'train_cfg.max_iters', 'param_scheduler', 'custom_hooks'
    ],
    stages=[
        'configs/cam/cam_effl2-d16_1xb32-500it_demo-128x128.py',
        'configs/camguide/camguide-stage1_effl0_teacher-effl2_1xb32-300it_demo-128x128.py',
        'configs/camguide/camguide-stage2_effl0_teacher-effl2_1xb32-200it_demo-128x128.py',
        'configs/camguide/camguide-stage3-nomorph-noloc_effl0_1xb32-300it_demo-128x128.py'
    ],
    # the teacher (500 x 32) and stage 3 (300 x 32) beyond the budget
    extra_images=16000 + 9600)
