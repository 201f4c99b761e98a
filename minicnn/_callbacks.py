"""scikit-learn's callback API (``sklearn.callback``, 1.9+) on the fit loop: the epochs are the iterations.

A ``fit`` (or ``partial_fit``) is the root task; each epoch is a subtask
named ``"epoch"``. ``on_fit_task_end`` of an epoch receives the user's
``X``, ``y`` and a ``fitted_estimator`` that predicts with the weights of that
epoch (what :class:`sklearn.callback.ScoringMonitor` scores); a callback
returning True stops the fit after that epoch. A callback that raises makes
the fit raise, and the estimator is left as it was before the call (the
fit is atomic). Callbacks propagated by a meta-estimator (``Pipeline``,
``GridSearchCV``) attach the fit's tasks below the meta-estimator's.
"""


class FitHooks:
    """The callback contexts of one fit call (inert when no callback is set and no meta-estimator propagates)."""

    def __init__(self, est, X, y, sample_weight, max_epochs):
        self.est, self.X, self.y = est, X, y
        self.metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        self.active = bool(getattr(est, "_skl_callbacks", None)) or hasattr(est, "_parent_callback_ctx")
        self.root = self.epoch = None
        self.max_epochs, self.begun = max_epochs, False
        if self.active:
            self.root = est._init_callback_context(max_subtasks=max_epochs)

    def start(self, epochs):
        """Begin the root task, announcing the ``epochs`` this call will run (fewer than ``max_iter`` after a
        resume from a checkpoint: a progress bar's total is the epochs left, not those already done)."""
        if self.active and not self.begun:
            self.root.max_subtasks = epochs
            self.root.call_on_fit_task_begin(estimator=self.est, X=self.X, y=self.y, metadata=self.metadata)
        self.begun = True

    def begin_epoch(self):
        if self.active:
            self.epoch = self.root.subcontext(task_name="epoch")
            self.epoch.call_on_fit_task_begin(estimator=self.est, X=self.X, y=self.y, metadata=self.metadata)

    def end_epoch(self):
        """Call the epoch's end hooks; True when a callback asks to stop."""
        if not self.active or self.epoch is None:
            return False
        context, self.epoch = self.epoch, None
        return context.call_on_fit_task_end(estimator=self.est, X=self.X, y=self.y, metadata=self.metadata,
                                            reconstruction_attributes=dict)

    def end_fit(self):
        self.start(self.max_epochs)
        if self.active:
            self.end_epoch()   # an epoch left open by an interrupt still gets its end hook
            self.root.call_on_fit_task_end(estimator=self.est, X=self.X, y=self.y, metadata=self.metadata,
                                           reconstruction_attributes=dict)
