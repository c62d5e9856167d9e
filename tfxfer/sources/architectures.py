"""The Keras Applications architectures tfxfer knows, as plain data: the
constructor, the family that holds `preprocess_input`, the size the ImageNet
weights were trained at, and how a layer's name maps to its block group
(bottom to top, for "unfreeze the top k groups")."""

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class Architecture:
    constructor: str  # attribute of keras.applications
    family: str  # module of keras.applications that holds preprocess_input
    input_size: int  # the size the ImageNet weights were trained at
    group_of: callable  # layer name -> block group name


def _resnet_group(name):
    match = re.match(r"(conv[2-5])_", name)
    return match.group(1) if match else "stem"


def _mobilenet_v2_group(name):
    if name.startswith("expanded_conv"):
        return "block_0"
    match = re.match(r"block_(\d+)_", name)
    if match:
        return f"block_{match.group(1)}"
    return "top" if name in ("Conv_1", "Conv_1_bn", "out_relu") else "stem"


def _efficientnet_group(name):
    match = re.match(r"block(\d)", name)
    if match:
        return f"block{match.group(1)}"
    return "top" if name.startswith("top_") else "stem"


ARCHITECTURES = {
    "resnet50": Architecture("ResNet50", "resnet", 224, _resnet_group),
    "resnet101": Architecture("ResNet101", "resnet", 224, _resnet_group),
    "resnet152": Architecture("ResNet152", "resnet", 224, _resnet_group),
    "mobilenet_v2": Architecture("MobileNetV2", "mobilenet_v2", 224, _mobilenet_v2_group),
    "efficientnet_b0": Architecture("EfficientNetB0", "efficientnet", 224, _efficientnet_group),
    "efficientnet_b1": Architecture("EfficientNetB1", "efficientnet", 240, _efficientnet_group),
    "efficientnet_b2": Architecture("EfficientNetB2", "efficientnet", 260, _efficientnet_group),
    "efficientnet_b3": Architecture("EfficientNetB3", "efficientnet", 300, _efficientnet_group),
}
