"""Admin's Loop tab: the loop's settings as labelled inputs with help, the engine's own settings under
"Advanced", and the face-quality thresholds with a live count of the faces they hide."""
from __future__ import annotations

import dataclasses
from typing import Any

import streamlit as st

from app_pages import common
from aspl.engine.base import CLASSIFIERS, EngineSettings
from aspl.engine.engines import ASPL_QUERIES, CEAL_CRITERIA, METHOD_NAMES, METHODS, VARIANTS
from aspl.service import Service

VARIANT_IDENTITY = ("query_measure",)  # a variant's settings not offered under "Advanced"
CHOICES = {"query_measure": list(ASPL_QUERIES), "criterion": list(CEAL_CRITERIA), "classifier": list(CLASSIFIERS)}

METHODS_SHOWN = {
    "aspl-guarded": "ASPL, margin questions, auto-labels only near a named face of the person (default)",
    "aspl-margin": "ASPL, asking about the faces whose two likeliest people are closest",
    "aspl": "ASPL as in the paper: asking about the faces with the lowest best score",
    "ceal": "CEAL: asking about the most uncertain faces; sure ones auto-labelled for one round",
    "spl": "Self-paced only: auto-labels grow each round, no ranked questions",
    "random": "Random questions, no auto-labels (a baseline)",
    "all": "Every unlabelled face asked, no auto-labels (a baseline)",
}

#: The engine settings shown with a plain label (the others are under "Advanced" with their own names).
NAMED_ENGINE = {
    "query_size": ("Questions per round",
                   "How many faces a round ranks for annotators to answer. Smaller rounds retrain more often."),
    "min_labels": ("Labels before a person is learned",
                   "A person gets a classifier (and is suggested by it) once this many faces are named as them; "
                   "before that, suggestions come from similar faces."),
}
SHARED = {f.name for f in dataclasses.fields(EngineSettings)}  # engine settings every method has


def method_label(name: str) -> str:
    """A method's name with what it does."""
    return f"{name}: {METHODS_SHOWN[name]}" if name in METHODS_SHOWN else name


def _engine_input(name: str, default: Any, cur: Any, key: str) -> Any:
    """One engine setting under "Advanced", by its own name and type."""
    help_ = f"engine setting `{name}` (default {default!r})"
    if name in CHOICES:
        return st.selectbox(name, CHOICES[name], index=CHOICES[name].index(cur), key=key, help=help_)
    if isinstance(default, bool):
        return st.checkbox(name, value=bool(cur), key=key, help=help_)
    if isinstance(default, int):
        return int(st.number_input(name, value=int(cur), step=1, key=key, help=help_))
    if isinstance(default, float):
        return float(st.number_input(name, value=float(cur), format="%.4g", key=key, help=help_))
    if default is None:  # an optional number (e.g. support_similarity): empty = off
        return st.number_input(name, value=None if cur is None else float(cur), format="%.4g", key=key,
                               placeholder="off", help=help_ + "; empty = off")
    return st.text_input(name, value=str(cur), key=key, help=help_)


def _follow_stored(prefix: str, stored: Any) -> None:
    """Forget the inputs keyed ``prefix...`` when the stored values changed since this session last drew them
    (another admin, the command line), so the inputs show what is stored, not what was typed before."""
    seen = f"_seen_{prefix}"
    if st.session_state.get(seen) != stored:
        for k in [k for k in st.session_state if str(k).startswith(prefix)]:
            del st.session_state[k]
        st.session_state[seen] = stored


def loop_settings_form(svc: Service, who: str) -> None:
    """The loop's settings: method, questions, rounds that start by themselves, review and batch sizes;
    the rest of the engine's settings under "Advanced"."""
    loop = svc.loop_settings()
    _follow_stored("loop_", loop.as_dict())
    st.markdown("#### Loop settings")
    names = list(METHOD_NAMES)
    method = st.selectbox("Method", names, index=names.index(loop.method) if loop.method in names else 0,
                          key="loop_method", format_func=method_label,
                          help="How a round picks the faces to ask and which faces it labels by itself.")
    base = VARIANTS[method][0] if method in VARIANTS else method
    stored_base = VARIANTS[loop.method][0] if loop.method in VARIANTS else loop.method
    variant = VARIANTS[method][1] if method in VARIANTS else {}
    defaults = dataclasses.replace(METHODS[base].settings_class(), **variant)  # the variant's own defaults
    fixed = {k: v for k, v in variant.items() if k in VARIANT_IDENTITY}  # what makes it that variant: hidden

    def current(name: str) -> Any:  # shared settings carry over to another method; the method's own do not
        d = getattr(defaults, name)
        return loop.engine.get(name, d) if name in SHARED or base == stored_base else d

    with st.form("loop_settings"):
        engine: dict[str, Any] = {}
        st.markdown("**Questions**")
        c1, c2, c3 = st.columns(3)
        for col, name in zip((c1, c2), NAMED_ENGINE):
            label, help_ = NAMED_ENGINE[name]
            engine[name] = int(col.number_input(label, value=int(current(name)), min_value=0, step=1,
                                                key=f"loop_{name}", help=help_))
        lease = c3.number_input("Seconds a shown face stays reserved", value=float(loop.lease_seconds),
                                min_value=1.0, step=10.0, key="loop_lease",
                                help="While an annotator looks at a face, nobody else gets it; after this long "
                                     "without an answer it goes back to the others.")
        st.markdown("**Rounds that start by themselves**")
        c1, c2, c3 = st.columns(3)
        every = c1.number_input("Start a round after this many answers", value=int(loop.round_every), min_value=0,
                                step=1, key="loop_round_every",
                                help="A round starts by itself in the background after this many answers since "
                                     "the last one, so annotators never wait for an admin. 0 = only by hand.")
        low = c2.number_input("Or when only this many questions are left", value=int(loop.queue_low), min_value=0,
                              step=1, key="loop_queue_low",
                              help="A round also starts when no more than this many of the last round's "
                                   "questions are still open, so the next ones are ready in time.")
        trust = c3.number_input("Never ask about auto-labels above this confidence", value=float(loop.auto_trust),
                                min_value=0.0, max_value=1.0, step=0.05, format="%.2f", key="loop_auto_trust",
                                help="Auto-labels this sure count as answered and are never queued for a "
                                     "person; 1 = any auto-label may be asked about.")
        st.markdown("**Review and batch**")
        c1, c2, c3, c4 = st.columns(4)
        rnd = c1.number_input("Review: random auto-labels", value=int(loop.review_random), min_value=0, step=1,
                              key="loop_review_random",
                              help="Auto-labels drawn at random for a reviewer each time: they estimate the "
                                   "auto-labels' precision without bias.")
        lowc = c2.number_input("Review: least sure auto-labels", value=int(loop.review_low), min_value=0, step=1,
                               key="loop_review_low",
                               help="The auto-labels with the lowest confidence, shown to a reviewer to catch "
                                    "mistakes (not counted in the precision estimate).")
        bsz = c3.number_input("Faces per batch grid", value=int(loop.batch_size), min_value=1, step=1,
                              key="loop_batch_size", help="How many faces a group in Annotate → Batch shows at once.")
        sim = c4.number_input("Group faces more similar than", value=float(loop.cluster_similarity), min_value=-1.0,
                              max_value=1.0, step=0.01, format="%.3f", key="loop_cluster_similarity",
                              help="Similarity (cosine, after removing the mean face) above which unnamed faces "
                                   "are grouped in Batch mode: higher = smaller, purer groups. Applies at once.")
        sup = c4.number_input("Offer a face for a person from similarity", value=float(loop.support_similarity),
                              min_value=-1.0, max_value=1.0, step=0.01, format="%.3f",
                              key="loop_support_similarity",
                              help="A person's Batch group offers a face only if it is at least this similar "
                                   "(cosine, after removing the mean face) to a face named that person; "
                                   "auto-labels further away go to a separate check group.")
        with st.expander("Advanced: the engine's own settings"):
            cols = st.columns(3)
            shown = [f for f in dataclasses.fields(defaults) if f.name not in NAMED_ENGINE
                     and f.name != "random_state" and f.name not in fixed]
            for i, f in enumerate(shown):
                with cols[i % 3]:
                    engine[f.name] = _engine_input(f.name, getattr(defaults, f.name), current(f.name),
                                                   f"loop_eng_{method}_{f.name}")
            center = st.checkbox("Centre embeddings (subtract the labelled mean before the classifiers)",
                                 value=loop.center, key="loop_center")
        if engine.get("finetune_every") and not svc.backbone_is_trainable():
            st.caption(f"{svc.backbone} is frozen: rounds will skip fine-tuning (swap to a trainable backbone "
                       f"on the Backbone tab to fine-tune).")
        if st.form_submit_button("Save settings"):
            changed = {k: v for k, v in engine.items() if v != getattr(defaults, k)}
            new = dataclasses.replace(loop, method=method, engine=changed, lease_seconds=float(lease),
                                      review_random=int(rnd), review_low=int(lowc), batch_size=int(bsz),
                                      cluster_similarity=float(sim), support_similarity=float(sup),
                                      center=bool(center), round_every=int(every),
                                      queue_low=int(low), auto_trust=float(trust))
            if common.guarded(svc.set_loop_settings, new, who, ok="Settings saved.", inline=True) is not None:
                st.rerun()


def face_quality_form(svc: Service, who: str) -> None:
    """Minimum face size and detection probability; the faces they would hide are counted as you type."""
    st.markdown("#### Face quality")
    st.caption("Faces below these thresholds are **hidden**: kept in the library, but never asked, trained on or "
               "counted as remaining (background faces, blurred or tiny ones). Annotators can still show them on "
               "request and name one anyway (Annotate → Hidden faces). 0 hides nothing.")
    q = svc.face_quality()
    _follow_stored("quality_min_", q)
    c1, c2, c3 = st.columns(3)
    px = c1.number_input("Minimum face size (pixels)", value=float(q["min_px"]), min_value=0.0, step=5.0,
                         format="%.0f", key="quality_min_px",
                         help="The shorter side of the face's box in the photo, in pixels. Faces in the "
                              "background of a group photo are often 20-40 px; 0 keeps every size.")
    prob = c2.number_input("Minimum detection probability", value=float(q["min_prob"]), min_value=0.0,
                           max_value=1.0, step=0.01, format="%.2f", key="quality_min_prob",
                           help="How sure the face detector is that the box holds a face; most real faces score "
                                "above 0.95. 0 keeps every detection.")
    rel = c3.number_input("Minimum size relative to the photo's largest face", value=float(q["min_rel"]),
                          min_value=0.0, max_value=1.0, step=0.05, format="%.2f", key="quality_min_rel",
                          help="Hide faces smaller than this share of the largest face in the same photo: "
                               "bystanders behind the subject. On lfw-dev, 0.7 hid 40-65% of the bystanders "
                               "and none of the photos' subjects. 0 keeps every face.")
    would = svc.faces_below_quality(px, prob, rel)
    if st.button(f"Apply: hide {would} face(s)", key="quality_apply",
                 help="Store the thresholds and hide every face below them now (faces shown anyway are hidden "
                      "again if they are below)."):
        n = common.guarded(svc.set_face_quality, px, prob, who, inline=True, min_rel=rel)
        if n is not None:
            st.success(f"Thresholds applied: {n} face(s) hidden now.")
    q = svc.face_quality()
    st.caption(f"Now: **{svc.stats(detail=False)['hidden_faces']}** face(s) hidden (stored thresholds: "
               f"{q['min_px']:g} px, probability {q['min_prob']:g}, {q['min_rel']:g} of the largest face).")


def loop_status(svc: Service) -> None:
    """One line: faces still needing a person, answers since the last round, when the next starts by itself."""
    s = svc.loop_state()
    if s["done"]:
        line = "Every face is named, a stranger or hidden."
    else:
        line = f"**{s['remaining']}** face(s) still need a person."
    line += f" {s['answers_since_round']} answer(s) since the last round"
    if s["round_running"]:
        line += "; a round is running now."
    elif s["round_every"] > 0:
        left = max(0, s["round_every"] - s["answers_since_round"])
        line += f"; the next round starts by itself after {left} more." if left else "; a round is due."
    else:
        line += "; rounds start only by hand."
    st.caption(line)
