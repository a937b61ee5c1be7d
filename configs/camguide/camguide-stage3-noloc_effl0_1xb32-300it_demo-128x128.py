# Ablation (Table V, "Our-dagger"): all stages with morphology, without
# the window local consistency loss.
_base_ = ['./camguide-stage3_effl0_1xb32-300it_demo-128x128.py']
model = dict(loss_loc=None)
wsss_row = dict(
    table='camguide',
    name='Our+ (stage 3, morphology)',
    parent='configs/camguide/camguide-stage3-nomorph-noloc_effl0_1xb32-300it_demo-128x128.py',
    change=['model.heuristic_targets.close_kernel'],
    stages=[
        'configs/cam/cam_effl2-d16_1xb32-500it_demo-128x128.py',
        'configs/camguide/camguide-stage1_effl0_teacher-effl2_1xb32-300it_demo-128x128.py',
        'configs/camguide/camguide-stage2_effl0_teacher-effl2_1xb32-200it_demo-128x128.py',
        'configs/camguide/camguide-stage3-noloc_effl0_1xb32-300it_demo-128x128.py'
    ],
    extra_images=16000 + 9600)
