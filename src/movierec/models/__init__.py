"""TensorFlow Recommenders models: two-tower retrieval, pointwise ranking, exports and indexes.

Submodules are imported where needed (TensorFlow is heavy): ``retrieval``, ``ranking``,
``export``, ``index``, ``train``, ``bundle``.
"""
