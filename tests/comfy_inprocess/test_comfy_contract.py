"""What the pack needs of ComfyUI: the private internals keep their shape, every name it uses exists,
and the entry point lists its nodes."""
from __future__ import annotations

import asyncio
import importlib
import inspect

import comfy.conds
import comfy.samplers
import latent_preview
import server
import torch
from density_geodesics.nodes import NODES, comfy_internals
from inprocess_support import SIZE

from devtools import comfy_harness as harness
from devtools.comfy_symbols import OBJECT_MEMBERS, pack_symbols

pack = harness.import_pack()


def test_comfy_internals_keep_their_shape(sd):
    """The private ComfyUI internals of nodes/comfy_internals.py: fails naming the one that changed."""
    tokens, other = torch.ones(1, 77, 8), torch.zeros(1, 77, 8)
    for cond_type, value, new in ((comfy.conds.CONDRegular, tokens, other),
                                  (comfy_internals.CROSS_ATTN_COND, tokens, other),
                                  (comfy.conds.CONDConstant, 3, 4), (comfy.conds.CONDList, [tokens], [other])):
        copy = comfy_internals.cond_with(cond_type(value), new)
        assert type(copy) is cond_type and copy.cond is new, f"comfy.conds.{cond_type.__name__}._copy_with changed"
    seen = {}

    class InspectingSampler(comfy.samplers.Sampler):
        def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
                   disable_pbar=False):
            conds = comfy_internals.sampling_conds(model_wrap)
            seen["names"] = set(conds)
            seen["model_conds"] = conds["positive"][0]["model_conds"]
            x, sigma = torch.randn_like(noise), torch.full((noise.shape[0],), float(sigmas[0]))
            as_given = model_wrap(x, sigma, **extra_args)
            comfy_internals.set_sampling_conds(model_wrap, {"positive": conds["negative"],
                                                            "negative": conds["negative"]})
            swapped = model_wrap(x, sigma, **extra_args)
            comfy_internals.set_sampling_conds(model_wrap, conds)
            seen["swap_changes_the_call"] = not torch.equal(as_given, swapped)
            return torch.zeros_like(noise)

    guider = comfy.samplers.CFGGuider(sd["model"])
    guider.set_conds(sd["cat"], sd["dog"])
    guider.set_cfg(1.0)
    latent = torch.zeros(1, 4, SIZE // 8, SIZE // 8)
    guider.sample(latent, latent, InspectingSampler(), torch.tensor([2.0, 0.0]), disable_pbar=True, seed=0)
    assert seen["names"] == {"positive", "negative"}, "CFGGuider.conds: no longer the processed conds by name"
    assert isinstance(seen["model_conds"]["c_crossattn"], comfy_internals.CROSS_ATTN_COND), \
        "CFGGuider.conds entries: 'model_conds' no longer holds comfy.conds objects"
    assert seen["swap_changes_the_call"], "CFGGuider no longer reads .conds at each model call"


def test_every_comfy_name_the_pack_uses_exists_in_this_comfyui(sd):
    """devtools/comfy_symbols.py's list, checked against the installed ComfyUI (0.3.75 in CI)."""
    missing = [name for name in pack_symbols() if not _resolves(name)]
    assert not missing, f"names the pack uses but this ComfyUI lacks: {missing}"
    model = sd["model"]
    objects = {"ModelPatcher": model, "BaseModel": model.model,
               "model_sampling": model.get_model_object("model_sampling"),
               "LatentFormat": model.get_model_object("latent_format"), "VAE": sd["vae"],
               "CFGGuider": comfy.samplers.CFGGuider(model), "Sampler": comfy.samplers.Sampler,
               "CONDRegular": comfy.conds.CONDRegular(torch.zeros(1)),
               "Latent2RGBPreviewer": latent_preview.Latent2RGBPreviewer, "PromptServer": server.PromptServer}
    # Attributes a running server sets on itself exist only on an instance: read them from __init__'s source.
    init_source = inspect.getsource(server.PromptServer.__init__)

    def has(owner: str, member: str) -> bool:
        name = member.split()[0]
        return f".{name} = " in init_source if "set in __init__" in member else hasattr(objects[owner], name)

    absent = [f"{owner}.{member}" for owner, member, _ in OBJECT_MEMBERS
              if not has(owner, member) and "while sampling" not in member]
    assert not absent, f"members the pack uses but this ComfyUI's objects lack: {absent}"


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                value = getattr(value, attr)
        except AttributeError:
            return False
        return True
    return False


def test_entrypoint_lists_prefixed_nodes_with_tooltips_everywhere():
    extension = asyncio.run(pack.comfy_entrypoint())
    nodes = asyncio.run(extension.get_node_list())
    assert nodes == NODES
    for node in nodes:
        schema = node.define_schema()
        schema.validate()
        assert schema.node_id.startswith("DensityGeodesics_") and schema.category == "density_geodesics"
        for item in [*schema.inputs, *schema.outputs]:
            assert item.tooltip, f"{schema.node_id}.{item.id} has no tooltip"
