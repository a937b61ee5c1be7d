# The demo CAM baseline with the example project's components: the CAM
# classifier is trained with ExampleAsymmetricLoss and test-time seeds are
# cleaned by ExampleMorphRefiner. Both are registered into mmwsss's
# registries when custom_imports imports the project package, which needs
# the repository root on PYTHONPATH (see ../README.md).
_base_ = ['../../../configs/cam/cam_r18-w32_1xb32-600it_demo-128x128.py']

custom_imports = dict(
    imports=['projects.example_project.example_project'],
    allow_failed_imports=False)

model = dict(
    cam_head=dict(
        loss_cls=dict(
            _delete_=True,
            type='ExampleAsymmetricLoss',
            gamma_pos=0.0,
            gamma_neg=4.0,
            clip=0.05,
            loss_weight=1.0)),
    test_cfg=dict(
        refine=dict(type='ExampleMorphRefiner', close_size=5, open_size=3)))
