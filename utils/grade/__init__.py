"""The instructor's autograder for the course's exercise sets: ``python -m utils.grade``.

Instructor workflow
-------------------
1. Author or edit an exercise set in ``solutions/exNN_<topic>.ipynb`` (the single source):
   notebook metadata ``"convcourse": {"exercise_set": "exNN", "title": ...}``, nbgrader
   schema-3 cell metadata, solutions between ``### BEGIN SOLUTION`` / ``### END SOLUTION``,
   hidden tests between ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``.
2. ``python -m tools.make_exercises`` (or ``make exercises``) regenerates the learners'
   ``exercises/exNN_*.ipynb``; ``--check`` (and tests/test_exercises.py) tells when they are stale.
   nbgrader users can also run ``nbgrader generate_assignment`` on the solutions: same result.
3. Collect the learners' saved notebooks (any file names, any folder layout), then::

       python -m utils.grade submissions/ --out grades/ --jobs 2
           [--timeout 30] [--total-timeout 300] [--memory 4] [--max-output 1048576]
           [--execute always|when-needed] [--extra-tests instructor_tests/] [--solutions solutions/]
           [--gradebook grades/gradebook.csv]

   * ``--solutions`` defaults to ``$CONVCOURSE_SOLUTIONS``, else ``solutions/`` of the course checkout
     the package runs from; an installed package ships no solutions (learners install it too), so a
     grader installed from a wheel is told to pass one of the two;
   * each notebook's exercise set comes from its metadata (``convcourse.exercise_set``);
   * ``grades/grades.csv``: one row per (submission, question), columns ``submission,
     learner, exercise_set, question, points, max_points, status`` (the learner from the folder
     layout: :mod:`utils.grade.layout`) with status passed, failed, error,
     timeout, invalid or needs-review (quiz free-response answers: grade those by hand);
   * ``--gradebook FILE``: one row per learner, one column per exercise set and ``total``
     (:mod:`utils.grade.gradebook`; docs/teaching.md);
   * ``grades/feedback/<submission>.txt``: what to send back to each learner (check messages,
     never hidden-test source); one summary line per submission on stdout;
   * ``--timeout`` limits each notebook cell and each test, ``--total-timeout`` the whole
     notebook; ``--execute when-needed`` skips running a notebook whose tests only call the
     learner's functions (about twice as fast; the default also lists the cells that raised);
   * exit status 0 when everything was graded (whatever the grades), 1 for a fault of the
     grader itself, 2 for a usage error.
4. ``--extra-tests DIR``: instructor-only tests in ``DIR/exNN.py`` (cells introduced by a line
   ``# %% grade_id=NAME points=N``) or ``DIR/exNN.ipynb`` (nbgrader test cells).  They run like
   the shipped tests, appear as ``extra:NAME`` rows, and feedback shows only pass/fail and points.

How a submission is graded (and why a submission cannot grade itself)
---------------------------------------------------------------------
* The submitted file is only read, never written.  Its code cells (except its copies of the
  test cells and quiz cells) run in a fresh Jupyter kernel started under a memory cap
  (RLIMIT_AS), with a per-cell and a total time limit and an output cap.  The values the tests
  need are then saved as JSON/``np.save`` data (never pickle) and read back.
* The tests are the *instructor's* test cells from ``solutions/`` (hidden tests included; the
  learner's edited copies are ignored).  They run in the grader's own clean process with the
  same ``utils.checks`` functions the learner sees.  Names they use that the learner defined as
  functions are proxies to a separate limited *runner* process; arguments and results cross as
  plain data.  So patching numpy, torch or ``utils.checks`` in a submission changes nothing here.
* One rule for what of the learner's code the runner executes (:mod:`.student_code`): in the
  order written, every top-level import, ``def`` and ``class``, and every other top-level
  statement that sets or changes a name the tested functions read (module-level constants,
  lambdas, caches, a loaded model), directly or through other such statements; plots, prints,
  checks and training runs nothing tested depends on are not run again.  A statement that runs
  past the time limit or ends the process while loading is skipped and named in the feedback.
* The verdict is the notebook's: a proxy changes the caller's arguments as the learner's
  function changed its copy (so "changed its input in place" is caught here too), returns
  torch tensors as torch tensors, raises the learner's exception with its own message and
  builtin class, and carries the learner's source (``__source__``) and what its global names
  are (``__globals_origin__``) for the source rules (from scratch, no loops over positions).
  A learner's model that cannot cross processes is described inside the runner by a trusted
  copy of instructor code (``fn.__call_described__(utils.checks.describe_model, ...)``).
  A learner's timeout inside a check is ``timeout``, never a wrong answer.
* Hidden tests stay hidden: while a test cell's ``### BEGIN/END HIDDEN TESTS`` region (or a check in
  hidden mode) runs, no text the learner's code chose reaches the feedback (its exception messages
  and class names, the class name of a value that cannot be graded, a shape it made up), so a
  function cannot send a hidden input out through them.
* The runner is the learner's process, so what it reports besides return values (the global names
  for the from-scratch rule, model descriptions) is only as honest as the code in it: code that
  reaches into the running program (frames, ``gc``, ``ctypes``, ``globals()``, ``exec``;
  :mod:`.integrity`) is not run at all, and its function tests are ``needs-review`` (0 points until
  the instructor looks).  This is a tripwire on the notebook's text, not a proof (see there).
* Infinite loops, ``os._exit``, memory hogs, floods of output, broken files (not JSON, wrong
  nbformat, metadata or cell fields of the wrong type: each named in the file's ``invalid`` rows),
  a malformed quiz record (only that quiz is invalid) or another course's notebook each give that
  submission clear rows; the other submissions are still graded.  Two hand-ins of one learner for
  one set (:func:`.layout.learner_of`) are both graded and flagged with a ``duplicate`` row; the
  gradebook keeps neither (its cell stays empty until the instructor chooses one).  A notebook
  whose metadata names another learner of the run (or a folder whose notebooks name several) gets a
  ``learner`` row (``needs-review``), and that classmate's name does not move it out of its
  learner's folder (:func:`.layout.identity_notes`).
* Every process that runs learner code (kernel and runner) runs in a bubblewrap sandbox
  (:mod:`.sandbox`): unprivileged uid, no capabilities, no network, its own PID namespace, a
  read-only view of the system, Python and ``utils`` only, size-limited tmpfs scratch, memory and
  process caps for the whole submission; every process ends with it, and ``grades.csv`` is
  written only once none is left.  Without a working ``bwrap`` the grader refuses to grade
  unless given ``--unsafe-no-sandbox`` (then learner code runs as the grader's user).
"""
