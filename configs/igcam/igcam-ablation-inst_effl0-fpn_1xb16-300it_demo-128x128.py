# IG-CAM ablation, Table 3 row "+Inst" on the demo: single-scale CAM (the
# FPN's top level only, as the Base row) with instance guidance (Selective
# Search proposals, top 64, attention-MIL weights alpha_k), no influence.
# Everything else, including the proposal pipelines and the hooks, is the
# "+Inst +MS" row's (igcam-ablation-inst-ms_...py).
_base_ = ['./igcam-ablation-inst-ms_effl0-fpn_1xb16-300it_demo-128x128.py']
model = dict(
    neck=dict(start_level=3, num_outs=1), cam_head=dict(num_scales=1))
