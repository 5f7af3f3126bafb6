"""Methods on the backbone pool (issue 6), one module per method.

* :mod:`~aspl.methods.data`: cached aligned face crops of a labelled folder or a library.
* :mod:`~aspl.methods.cka`: linear CKA (Kornblith et al. 2019).
* :mod:`~aspl.methods.guidance`: guided pretraining (Training the Untrainable, CKA to a frozen guide).
* :mod:`~aspl.methods.rotnet`: self-supervised rotation prediction (Gidaris et al. 2018).
* :mod:`~aspl.methods.evaluate`: simulated label efficiency of a backbone on cached crops.
* :mod:`~aspl.methods.explain`: LinearScope heatmaps for a library face.
* :mod:`~aspl.methods.video`: video face tracks (detect, track, store, label once).
* :mod:`~aspl.methods.textsearch`: image-text joint embedding with a bidirectional ranking loss.
* :mod:`~aspl.methods.cli`: the ``pretrain``, ``explain``, ``import-video``, ``text-search`` sub-commands.

Compression (:mod:`models.compress`) and LinearScope (:mod:`models.linearscope`)
act on networks and live in ``models/``; the CNN-SVM head is
``FineTuneSettings(loss="svm")`` in :mod:`aspl.finetune`.
"""
