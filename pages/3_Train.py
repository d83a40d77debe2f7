"""Train: train or fine-tune a model on your own photos, with live curves; one job at a time per app."""

import os
import shlex

import streamlit as st
import torch

from ram_core import app_support as app
from ram_core import served
from ram_core import train_views as tv
from ram_core.errors import RAMError
from ram_core.jobs import ACTIVE, JobQueue, JobSpec, recipe_values, recipes
from ram_core.jobs.store import ENDED, ENV_JOBS_DIR
from ram_core.safe_text import md

st.set_page_config(page_title="Train · RAM Studio", page_icon=":material/model_training:", layout="wide")
model = app.model_picker()
if served.is_served() and served.write_root() is None and not os.environ.get(ENV_JOBS_DIR, "").strip():
    st.title("Train")
    st.info("This server does not let visitors train models: it has no folder to write them to "
            "(RAM_STUDIO_ROOTS has no write= folder).", icon=":material/block:")
    st.stop()
queue = JobQueue()
STORE = "train.store"  # the form's values, kept when the user visits another page (see keep())
store = st.session_state.setdefault(STORE, {})
OPTIONS = ("epochs", "lr", "steps", "input_size", "batch_size")


def keep(key: str, default=None, options=None) -> None:
    """Seed a widget from the page's store before it is drawn (Streamlit forgets a widget's value
    when a run does not draw it)."""
    value = st.session_state[key] if key in st.session_state else store.get(key, default)
    if options is not None and value not in options:
        value = default if default in options else options[0]
    st.session_state[key] = value


def remember(key: str):
    store[key] = st.session_state.get(key)
    return store[key]


def fill_recipe() -> None:
    """The recipe's values into the option widgets (when the recipe changes)."""
    values = recipe_values(st.session_state["train.recipe"])
    for name in OPTIONS:
        value = values[name]
        st.session_state[f"train.{name}"] = store[f"train.{name}"] = value
    store["train.recipe"] = st.session_state["train.recipe"]


st.title("Train")
st.caption("Train a model on your own photos: a VOC or COCO folder, an image folder with a labels file, or a "
           "zip you upload. Training runs in its own process, one job at a time for the whole app; this page "
           "shows it live to every session and survives reloads.")


# ---- jobs: the running one, the queue, the finished ones ---------------------------------------
def job_details(job, live: bool) -> None:
    view = tv.progress_view(job)
    status = job.status
    head, stop_col = st.columns([5, 1])
    head.markdown(f"{tv.STATE_ICONS.get(job.state, '')} **{job.name}** · {view.text}")
    if live and job.state == "running" and stop_col.button(
            "Stop", key=f"train.stop.{job.id}", icon=":material/stop_circle:",
            help="Stop after the current batch. The last finished epoch is kept; Resume continues from it."):
        queue.stop(job.id)
        st.rerun()
    m = st.columns(4)
    m[0].metric("Elapsed", view.elapsed)
    m[1].metric(view.remaining_label if live else "Remaining", view.remaining if live else "—",
                help="From the speed so far: while features are extracted, the time to finish them (the "
                     "epochs follow); then the time to finish every epoch.")
    m[2].metric("Best validation mAP", "—" if view.best_map is None else f"{view.best_map:.1f}")
    m[3].metric("Epochs done", view.epochs_done)
    if live and view.features is not None:
        st.progress(view.features, text=f"Backbone features: {view.features_text}")
    if view.epochs is not None and (live or job.state != "finished"):
        st.progress(view.epochs, text=f"Training: {view.epochs_text}")
    history = job.history()
    if history:
        st.plotly_chart(tv.curves_figure(history), key=f"train.curves.{job.id}.{'live' if live else 'done'}",
                        config={"displaylogo": False})
    if status.get("error"):
        st.error(status["error"], icon=":material/error:")


def finished_actions(job) -> None:
    a, b, c = st.columns(3)
    ckpt = job.best_checkpoint
    if a.button("Open in Inspect", key=f"train.inspect.{job.id}", icon=":material/center_focus_strong:",
                disabled=ckpt is None, type="primary",
                help="Make this checkpoint the model of every page and look at a validation photo."):
        tv.open_in_inspect(st.session_state, job)
        st.switch_page("pages/1_Inspect.py")
    if b.button("Open in Evaluate", key=f"train.evaluate.{job.id}", icon=":material/analytics:",
                disabled=ckpt is None or job.evaluation_dir is None,
                help="Its evaluation on the validation photos: per-class AP, curves, browsing."):
        tv.open_in_evaluate(st.session_state, job)
        st.switch_page("pages/2_Evaluate.py")
    if job.can_resume and c.button("Resume", key=f"train.resume.{job.id}", icon=":material/play_arrow:",
                                   help="Continue from the last finished epoch (queued if another job runs)."):
        try:
            queue.resume(job.id)
        except RAMError as exc:
            st.error(str(exc))
        else:
            st.rerun()
    if ckpt is not None:
        st.caption(f"Checkpoint: `{app._short(ckpt)}`; it is listed in the sidebar's model picker.")


busy = queue.active() is not None or bool(queue.waiting())


@st.fragment(run_every=2 if busy else 10)
def jobs_panel() -> None:
    try:
        active = queue.dispatch()  # also notices a training process that died
    except OSError as exc:
        st.error(f"The jobs folder `{queue.root}` cannot be used: {md(exc)}")
        return
    waiting = queue.waiting()
    seen = st.session_state.get("train.seen_active")
    st.session_state["train.seen_active"] = active.id if active else None
    if (active is not None) != busy or (seen and (active is None or active.id != seen)):
        # a job started or ended since the page was drawn: redraw all of it (the sidebar lists the
        # new checkpoint, the refresh rate follows)
        if seen and (active is None or active.id != seen):
            st.session_state["train.selected"] = seen
        st.rerun()
    st.subheader("Now training")
    if active is None:
        st.info("No training is running. Start one below.", icon=":material/hourglass_empty:")
    else:
        with st.container(border=True):
            job_details(active, live=True)
            with st.expander("Output of the training process"):
                st.code(active.log_tail(40) or "(nothing yet)", language=None)
    if waiting:
        st.markdown(f"**Waiting in the queue** ({len(waiting)}): they start one after the other.")
        st.dataframe(tv.queue_table(waiting), hide_index=True, width="stretch", key="train.queue")
        names = {j.id: j.name for j in waiting}
        cancel = st.selectbox("Cancel a waiting job", [None, *names], key="train.cancel_pick",
                              format_func=lambda i: "—" if i is None else names.get(i, i))
        if cancel and st.button("Cancel it", key="train.cancel", icon=":material/cancel:"):
            queue.stop(cancel)
            st.rerun()

    done = [j for j in queue.jobs() if j.state in ENDED]
    if done:
        st.subheader("Finished and stopped runs")
        by_id = {j.id: j for j in done}
        ids = list(by_id)
        keep("train.selected", ids[0], ids)
        picked = st.selectbox("Run", ids, key="train.selected", format_func=lambda i: tv.job_label(by_id[i]))
        remember("train.selected")
        job = by_id[picked]
        with st.container(border=True):
            job_details(job, live=False)
            finished_actions(job)
            with st.expander("Command line and output"):
                st.code(tv.command_line(job), language="bash")
                st.code(job.log_tail(60) or "(no output)", language=None)


jobs_panel()

# ---- a new run -------------------------------------------------------------------------------
st.subheader("New training run")
data_col, recipe_col = st.columns(2, gap="large")
with data_col:
    st.markdown("##### Data")
    keep("train.source", "machine", ["machine", "upload"])
    source = st.segmented_control("Photos", ["machine", "upload"], key="train.source",
                                  format_func={"machine": "A folder on this machine", "upload": "Upload a zip"}.get)
    remember("train.source")
    root_text, kind = "", "folder"
    if source == "upload":
        upload = st.file_uploader("A zip of photos with labels.csv or labels.json", type=["zip"], key="train.zip",
                                  help="Unpacked safely (no paths outside its folder, size and file-count limits, "
                                       "every photo decoded) into the jobs folder. Uploads are limited to "
                                       f"{st.get_option('server.maxUploadSize')} MB: for a larger dataset, give "
                                       "its folder on this machine instead.")
        if upload is not None:
            try:
                with st.spinner("Unpacking and checking the photos…"):
                    unpacked = tv.unpack_upload(upload.getvalue(), queue)
            except RAMError as exc:
                st.error(f"**This zip cannot be used.** {md(exc)}", icon=":material/folder_zip:")
            else:
                root_text = str(unpacked.root)
                st.success(f"{unpacked.images} photos unpacked, labels in `{unpacked.labels_file.name}`.",
                           icon=":material/folder_zip:")
                if unpacked.skipped:
                    with st.expander(f"{len(unpacked.skipped)} unreadable photo(s) left out"):
                        st.markdown("\n".join(f"- {md(m)}" for m in unpacked.skipped[:50]))
    else:
        c1, c2 = st.columns([1, 2])
        keep("train.kind", "folder", list(tv.FORMATS))
        kind = c1.selectbox("Format", list(tv.FORMATS), key="train.kind", format_func=lambda k: k.upper()
                            if k != "folder" else "Image folder", help="\n\n".join(tv.FORMATS.values()))
        remember("train.kind")
        keep("train.root", "")
        root_text = c2.text_input("Dataset folder", key="train.root",
                                  placeholder="e.g. /data/VOCdevkit, /data/coco, or ~/photos (with labels.csv)")
        remember("train.root")
    default_train, default_val = tv.DEFAULT_SPLITS[kind]
    s1, s2 = st.columns(2)
    keep(f"train.split.{kind}", default_train)
    split = s1.text_input("Training split", key=f"train.split.{kind}",
                          placeholder="labels.csv / labels.json" if kind == "folder" else default_train,
                          help="VOC: trainval, train…; COCO: train, train2014…; a folder: the labels file "
                               "(found by itself when empty).")
    remember(f"train.split.{kind}")
    modes = {"fraction": "Hold out a fraction of the training photos", "split": "A validation split",
             "none": "No validation"}
    keep(f"train.val_mode.{kind}", "fraction" if kind == "folder" else "split", list(modes))
    val_mode = s2.selectbox("Validation", list(modes), key=f"train.val_mode.{kind}", format_func=modes.get,
                            help="The best epoch is chosen by its validation mAP, and the finished run is "
                                 "evaluated on these photos.")
    remember(f"train.val_mode.{kind}")
    val_split, val_fraction, split_seed = None, None, 0
    v1, v2 = st.columns(2)
    if val_mode == "split":
        keep(f"train.val_split.{kind}", default_val)
        val_split = v1.text_input("Validation split", key=f"train.val_split.{kind}",
                                  placeholder=default_val or "val.csv").strip() or None
        remember(f"train.val_split.{kind}")
    elif val_mode == "fraction":
        keep("train.val_fraction", 0.2)
        val_fraction = v1.slider("Held out", 0.05, 0.5, step=0.05, key="train.val_fraction",
                                 help="This share of the training photos is used for validation only.")
        remember("train.val_fraction")
        keep("train.split_seed", 0)
        split_seed = int(v2.number_input("Split seed", 0, 2**31 - 1, key="train.split_seed",
                                         help="The same seed and photos always give the same split; it is "
                                              "written into the run's config."))
        remember("train.split_seed")
    keep("train.skip_bad", False)
    skip_bad = st.checkbox("Skip malformed items (rows, annotations, missing photos) instead of stopping",
                           key="train.skip_bad")
    remember("train.skip_bad")

with recipe_col:
    st.markdown("##### Recipe")
    names = recipes()
    keep("train.recipe", next(iter(names)), list(names))
    recipe = st.selectbox("Recipe", list(names), key="train.recipe", format_func=names.get, on_change=fill_recipe,
                          help="The options below start at the recipe's values.")
    remember("train.recipe")
    base = recipe_values(recipe)
    for name in OPTIONS:
        keep(f"train.{name}", base[name])
    o1, o2, o3 = st.columns(3)
    epochs = o1.number_input("Epochs", 1, 1000, key="train.epochs")
    lr = o2.number_input("Learning rate", 1e-6, 1.0, key="train.lr", format="%.5f", step=1e-4,
                         help="The recipe's, chosen by cross-validation.  The default recipe's companion branch "
                              "(CSRA) learns at twice this rate; `--companion-lr` under More options sets it.")
    batch_size = o3.number_input("Batch size", 1, 1024, key="train.batch_size")
    o4, o5, _ = st.columns(3)
    steps = o4.number_input("Attention steps K", 1, 20, key="train.steps", disabled=base["steps"] is None,
                            help="Recurrent steps after the global one." if base["steps"] is not None
                            else "This head has no attention steps.")
    input_size = o5.number_input("Input size (pixels)", 32, 1024, step=32, key="train.input_size")
    gpu = torch.cuda.is_available()
    keep("train.fine_tune", False)
    fine_tune = st.toggle("Fine-tune the backbone on the GPU", key="train.fine_tune", disabled=not gpu,
                          help="Train the backbone too (images through it every step): needs a CUDA GPU. "
                               + ("" if gpu else "This machine has none: the backbone stays frozen and its "
                                  "features are extracted once."))
    for name in OPTIONS + ("fine_tune",):
        remember(f"train.{name}")
    keep("train.extra", "")
    extra_text = st.text_input("More `train` options", key="train.extra",
                               placeholder="e.g. --imagenet-prior --dropout 0.2 --region-size 5",
                               help="Any option of `python -m ram_core train --help`, as typed in a terminal.")
    remember("train.extra")
    keep("train.name", "")
    name = st.text_input("Run name", key="train.name", placeholder="default: the recipe and the data folder")
    remember("train.name")

# ---- preview of the data, and the start button --------------------------------------------------
problem, spec = None, None
try:
    root = tv.resolve_data_root(root_text) if root_text.strip() else None
    extra = shlex.split(extra_text)
    if root is not None:
        changed = {k: v for k, v in {"epochs": int(epochs), "lr": float(lr), "batch_size": int(batch_size),
                                      "steps": None if base["steps"] is None else int(steps),
                                      "input_size": int(input_size)}.items() if v != base[k]}
        spec = JobSpec(kind, str(root), split=split.strip() or None, val_split=val_split,
                       val_fraction=val_fraction, split_seed=split_seed, recipe=recipe,
                       fine_tune=bool(fine_tune and gpu), skip_bad=skip_bad, extra_args=extra, name=name.strip(),
                       **changed)
        spec.check()
        tv.check_served_paths(spec)
except (RAMError, ValueError) as exc:
    problem, spec = str(exc), None


@st.cache_data(max_entries=16, show_spinner="Reading the data…")
def cached_preview(spec_json: str, stamp: tuple) -> tv.DataPreview:
    import json

    return tv.preview_data(JobSpec.from_dict(json.loads(spec_json)))


preview = None
if spec is not None:
    import json as _json

    try:
        preview = cached_preview(_json.dumps(spec.to_dict(), sort_keys=True), tv.data_stamp(spec))
    except RAMError as exc:
        problem = str(exc)

st.markdown("##### The classes found")
if problem:
    st.error(f"**The data cannot be used as it is.** {md(problem)}", icon=":material/error:")
    if not skip_bad and ("line" in problem or "not found" in problem):
        st.caption("Fix the file, or tick *Skip malformed items* to leave such items out (each one is listed).")
elif preview is None:
    st.info("Choose the photos above: their classes and how many photos each has will show here.",
            icon=":material/photo_library:")
else:
    st.caption(f"Training: **{preview.num_train}** photos ({preview.train_name})"
               + (f" · validation: **{preview.num_val}** photos ({preview.val_name})" if preview.val_name else
                  " · no validation: the last epoch is kept"))
    st.dataframe(preview.table, hide_index=True, width="stretch", key="train.classes",
                 height=min(38 + 35 * len(preview.table), 420))
    for warning in preview.warnings:
        st.warning(warning, icon=":material/warning:")
    if preview.skipped:
        with st.expander(f"{len(preview.skipped)} malformed item(s) left out"):
            st.markdown("\n".join(f"- {md(m)}" for m in preview.skipped[:50]))

start = st.button("Start training", type="primary", icon=":material/play_arrow:", key="train.start",
                  disabled=preview is None, help="Queued when another job is running.")
if spec is not None:
    st.caption("The same run from a terminal: `python -m ram_core train " + " ".join(
        shlex.quote(a) for a in spec.train_argv("OUT_FOLDER")) + "`")
if start and spec is not None:
    try:
        job = queue.submit(spec)
    except RAMError as exc:
        st.error(str(exc), icon=":material/error:")
    else:
        where = "started" if job.state in ACTIVE else f"queued (position {len(queue.waiting())})"
        st.toast(f"Training job {md(job.name)} {where}.", icon=":material/model_training:")
        st.rerun()
