"""Cost report: parameters, forward FLOPs per patch, training-step FLOPs and feature-map memory of the DCA network
next to the stock nnU-Net network of the same plans, as ratios (the paper reports none of these).

Networks are built on PyTorch's ``meta`` device: shapes only, no weights in memory and no arithmetic, so the
report for a full-size 3d_fullres plan takes seconds on a laptop. FLOPs come from ``torch.utils.flop_counter``
(one multiply-add = 2 FLOPs; convolutions, transposed convolutions and matrix products), batch 1, one patch.
A training step's FLOPs are forward + backward per *labeled* sample, the DCA step with its share of unlabeled
samples; the losses add nothing the counter counts (they are elementwise), so a scalar of the outputs autograd
tracks stands in for them (a test checks the count against a real ``train_step``).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Optional, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from nnunetv2_dca.network.architectures import (UNLABELED_PER_LABELED, dca_architecture, is_dca, is_moe,
                                                stock_architecture)


def _build(architecture: Mapping, input_channels: int, num_classes: int) -> torch.nn.Module:
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    with torch.device("meta"):
        return get_network_from_plans(architecture["network_class_name"], architecture["arch_kwargs"],
                                      architecture["_kw_requires_import"], input_channels, num_classes,
                                      allow_init=False, deep_supervision=False)


def _flops(net: Callable, x: torch.Tensor, **kwargs) -> int:
    with FlopCounterMode(display=False) as counter:
        net(x, **kwargs)
    return int(counter.get_total_flops())


def _tracked_outputs(out) -> List[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out] if out.requires_grad else []
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tracked_outputs(o)]
    return []


def step_flops(net: Callable, x: torch.Tensor, **kwargs) -> int:
    """Forward + backward FLOPs of ``net(x, **kwargs)`` (a network or one of its methods) with every output
    autograd tracks in the loss."""
    with FlopCounterMode(display=False) as counter:
        outputs = _tracked_outputs(net(x, **kwargs))
        torch.stack([o.float().sum() for o in outputs]).sum().backward()
    return int(counter.get_total_flops())


def saved_activation_bytes(step: Callable[[], None], parameters: Sequence[torch.Tensor] = ()) -> int:
    """Bytes of the tensors autograd saves for the backward pass while ``step()`` runs its forward (each storage
    once; the parameters, which are in memory anyway, left out): the activation memory of a training step."""
    skip = {p.untyped_storage().data_ptr() for p in parameters}
    seen: Dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return int(sum(seen.values()))


def network_cost(architecture: Mapping, patch_size: Sequence[int], input_channels: int, num_classes: int,
                 unlabeled_per_labeled: float = UNLABELED_PER_LABELED,
                 aggregate_labeled: bool = False) -> Dict[str, float]:
    """Parameters, inference FLOPs (what nnUNetv2_predict runs per patch), training-forward FLOPs (deep supervision
    on; for DCA every expert head too), training-step FLOPs per labeled sample (forward + backward; DCA: the step of
    ``nnUNetTrainerDCA`` with its unlabeled samples; D_A on the labeled ones too with ``aggregate_labeled``), feature
    maps of one patch (``compute_conv_feature_map_size``) and of one labeled sample's training step (what the planner
    budgets)."""
    net = _build(architecture, input_channels, num_classes)
    dca = is_dca(architecture["network_class_name"])
    shape = [int(p) for p in patch_size]
    x = torch.empty((1, input_channels, *shape), device="meta")
    parameters = int(sum(p.numel() for p in net.parameters()))
    inference = _flops(net, x)
    net.decoder.deep_supervision = True  # what nnU-Net's set_deep_supervision_enabled does for training
    maps = float(net.compute_conv_feature_map_size(list(patch_size)))
    u = int(unlabeled_per_labeled)
    both = torch.empty((1 + u, input_channels, *shape), device="meta")
    if dca:
        step = step_flops(net, both, num_labeled=1, aggregate_labeled=aggregate_labeled)
        step_maps = net.compute_training_step_feature_map_size(list(patch_size), unlabeled_per_labeled,
                                                               aggregate_labeled)
    elif is_moe(architecture["network_class_name"]):
        # Semi-MoE's step needs every part on every sample (consistency without stop-gradient on the unlabeled
        # ones, gates of all in the balance loss): the whole network on labeled + unlabeled
        step, step_maps = step_flops(net.all_outputs, both), maps * (1 + u)
    else:
        step, step_maps = step_flops(net, x), maps
    return {
        "parameters": parameters,
        "inference_gflops": inference / 1e9,
        "training_forward_gflops": _flops(net.all_outputs if dca else net, x) / 1e9,
        "training_step_gflops": step / 1e9,
        "feature_maps_millions": maps / 1e6,
        "training_step_feature_maps_millions": step_maps / 1e6,
    }


def cost_report(plans: Mapping, configuration: str, dataset_json: Mapping,
                class_groups: Optional[List[List[int]]] = None,
                recipe_arch_kwargs: Optional[Callable[[Mapping], Dict]] = None,
                aggregate_labeled: bool = False) -> Dict:
    """Cost of the DCA network vs nnU-Net's network for one configuration of a plans dict (DCA plans, or stock
    plans + ``class_groups``). ``recipe_arch_kwargs`` (a DCA trainer's ``recipe_arch_kwargs``) and
    ``aggregate_labeled`` (its ``supervise_aggregation``) make it the network and step that trainer runs (the
    network package does not import the trainers, so the caller passes them); without them: the plans' network as
    built, D_A on the unlabeled samples only."""
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    pm = PlansManager(dict(plans))
    if configuration not in pm.available_configurations:
        raise ValueError(f"configuration {configuration!r} is not in plans {pm.plans_name} "
                         f"(available: {', '.join(pm.available_configurations)})")
    cm = pm.get_configuration(configuration)
    arch = {"network_class_name": cm.network_arch_class_name, "arch_kwargs": cm.network_arch_init_kwargs,
            "_kw_requires_import": cm.network_arch_init_kwargs_req_import}
    if is_dca(arch["network_class_name"]):
        dca, stock = arch, stock_architecture(arch)
    elif class_groups is not None:
        dca, stock = dca_architecture(arch, class_groups), arch
    else:
        raise ValueError(f"plans {pm.plans_name} are not DCA plans; plan with -pl nnUNetPlannerDCA or pass the "
                         f"class groups")
    if recipe_arch_kwargs is not None:
        dca = {**dca, "arch_kwargs": recipe_arch_kwargs(dca["arch_kwargs"])}
    n_in = determine_num_input_channels(pm, cm, dict(dataset_json))
    n_out = pm.get_label_manager(dict(dataset_json)).num_segmentation_heads
    patch = list(cm.patch_size)
    rows = {"nnU-Net": network_cost(stock, patch, n_in, n_out),
            "DCA": network_cost(dca, patch, n_in, n_out, aggregate_labeled=aggregate_labeled)}
    ratios = {k: rows["DCA"][k] / rows["nnU-Net"][k] for k in rows["DCA"]}
    return {"plans": pm.plans_name, "configuration": configuration, "patch_size": patch,
            "batch_size": cm.batch_size, "input_channels": n_in, "num_classes": n_out,
            "stock_network": stock["network_class_name"], "dca_network": dca["network_class_name"],
            "networks": rows, "ratios": ratios, "unlabeled_per_labeled": UNLABELED_PER_LABELED,
            # the planner's VRAM factor: what a DCA step keeps for its backward per labeled sample vs a stock step
            "training_step_feature_map_ratio": ratios["training_step_feature_maps_millions"]}


def format_cost_report(report: Mapping) -> str:
    labels = {"parameters": "parameters (M)", "inference_gflops": "inference GFLOPs / patch",
              "training_forward_gflops": "training forward GFLOPs / patch",
              "training_step_gflops": "training step GFLOPs / labeled patch",
              "feature_maps_millions": "feature maps / patch (M)",
              "training_step_feature_maps_millions": "training step feature maps (M)"}
    stock, dca, ratios = report["networks"]["nnU-Net"], report["networks"]["DCA"], report["ratios"]
    scale = {"parameters": 1e-6}
    lines = [f"{report['plans']} / {report['configuration']}: patch {report['patch_size']}, "
             f"batch {report['batch_size']}, {report['num_classes']} classes",
             f"{'':38s}{'nnU-Net':>12s}{'DCA':>12s}{'DCA/nnU-Net':>13s}"]
    for key, label in labels.items():
        s = scale.get(key, 1.0)
        lines.append(f"{label:38s}{stock[key] * s:12.2f}{dca[key] * s:12.2f}{ratios[key]:12.2f}x")
    lines.append(f"training step = forward + backward per labeled patch, DCA with "
                 f"{report['unlabeled_per_labeled']:g} unlabeled patch(es) each; its feature maps "
                 f"({report['training_step_feature_map_ratio']:.2f}x nnU-Net's) are the planner's VRAM factor")
    return "\n".join(lines)
