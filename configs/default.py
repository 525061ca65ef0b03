"""Defaults shared by every config: the official MOL training recipe.

Every other config imports this one and changes what differs.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  # TFDS dataset as 'name/config', built by `python -m mol_jax.tfds_build`;
  # several, comma-separated, for the 'composite' and 'lodo' protocols.
  config.dataset = 'smic/3class'
  # TFDS data directory holding the built dataset; '' = TFDS's default
  # (~/tensorflow_datasets or $TFDS_DATA_DIR).
  config.data_dir = ''
  # Build the dataset(s) when missing. Only possible for synthetic_me: the
  # licensed sets need the user's raw copy (docs/DATA.md).
  config.build_if_missing = False
  # Grain worker processes for the training input (0 = threads in-process).
  config.grain_workers = 0

  # Training augmentation beyond the official random 128x128 crops (both off
  # in the official code).
  config.augment = ml_collections.ConfigDict()
  # Mirror clips left-right with probability 1/2 (flow x negated, landmarks
  # swapped with their mirror points).
  config.augment.flip = False
  # Per-clip gain in [1 - a, 1 + a] and offset in [-a, a] on the normalised
  # frames (0 = off).
  config.augment.intensity = 0.0
  # Training crops lie within this many pixels of the centred evaluation crop
  # (per axis). 8 = anywhere in the stored 144x144 frame, the official random
  # offsets 0..16; 0 = the evaluation crop only.
  config.augment.crop_jitter = 8
  # Zoom training crops by a factor in [1 - a, 1 + a] around the same centre
  # (a window of 128 / factor pixels, at most the stored 144, resized to 128;
  # flow and landmarks follow). 0 = off, as in the official code.
  config.augment.scale = 0.0

  config.model = ml_collections.ConfigDict()
  # k of the CCC's cosine kNN graph (official default 4).
  config.model.neighbor_num = 4
  # Dropout rate of the MER head (official 0.5).
  config.model.dropout_rate = 0.5
  # Ablations (`python -m mol_jax.tools.ablation`): False builds MOL without
  # its FCC blocks (the conv-stack features pass through unchanged) or without
  # its CCC blocks (they add nothing); official weights then load into every
  # layer that remains. The flow and landmark tasks are switched off by their
  # loss weights (config.loss).
  config.model.use_fcc = True
  config.model.use_ccc = True
  # Start the landmark head as the mean-shape predictor: its last layer's
  # bias at the training clips' mean landmarks, its kernel at 0
  # (`initialisers.landmarks_at_mean_shape`). The official initialisation
  # starts near 0 px against targets of 10-120 px.
  config.model.landmarks_at_mean_shape = False
  # Start the flow head as the zero-flow predictor (its last layer at 0,
  # `initialisers.flow_at_zero`) instead of random flow.
  config.model.flow_at_zero = False
  # Add a small-displacement refinement after the flow head (`flow_refine.
  # FlowRefinement`): stride-1 convolutions at 128x128 on both frames of each
  # pair, their difference and the head's flow, adding a residual flow. The
  # head correlates the frames only at 16 px steps, coarse for 0.1-3 px
  # micro-motion. Its last layer starts at 0, so the model starts as the
  # official one; checkpoints record it and load as trained. False = the
  # official network.
  config.model.flow_refinement = False
  # Compute dtype of the forward and backward pass: 'float32' (the official
  # numerics) or 'bfloat16' (float32 master weights, optimiser state, BatchNorm
  # statistics and losses; for GPUs and TPUs: CPUs without bf16 units run it
  # slower than float32).
  config.model.compute_dtype = 'float32'

  config.loss = ml_collections.ConfigDict()
  # Weight of the flow MSE term (official `of_weight` 10); 0 switches the flow
  # head off in training.
  config.loss.of_weight = 10.0
  # Weight of the landmark term (official default 0.5; its README example 0.1).
  config.loss.ldm_weight = 0.5
  # Frame pairs (of 7) whose flow is predicted and supervised per step. 7 is
  # the official model; fewer runs the flow head (most of the network's cost)
  # on a random subset of pairs each step, an unbiased estimate of the same
  # loss, for CPUs and quick runs.
  config.loss.flow_pairs_per_step = 7
  # Clips of each batch whose flow is predicted and supervised per step; 0
  # (official) is every clip. k > 0 runs the flow head on the first k clips of
  # the shuffled batch only: like flow_pairs_per_step, an unbiased estimate of
  # the same term at k / batch_size of the flow head's cost.
  config.loss.flow_clips_per_step = 0
  # Flow-loss levers (`losses.FlowLossOptions`; measure them with
  # `python -m mol_jax.tools.flow_probe`), each at its official value here.
  # All keep the official / 7 divisor, so of_weight means the same for each.
  # What the flow term measures: 'mse' (official: mean of the squared error
  # over every element), 'epe' (mean over pixels of the end-point error
  # |(dx, dy)|), 'l1' (mean absolute error of each component) or
  # 'charbonnier' (mean of sqrt(d^2 + 1e-3^2) over every component, d in the
  # scaled units of flow_scale).
  config.loss.flow_loss = 'mse'
  # The loss compares prediction x s with target x s, i.e. flow in units of
  # 1/s px (the network's output stays in pixels: evaluation and prediction
  # do not change). s = 5 makes a 0.2 px micro-motion 1. It multiplies the
  # flow term by s^2 ('mse') or s (the others) against the other terms in the
  # shared layers; for the flow head's own weights AdamW divides it out, up
  # to optimizer.eps. 1.0 = pixels (official).
  config.loss.flow_scale = 1.0
  # '' (official): only the full-resolution flow is supervised. Otherwise 6
  # comma-separated weights of the flow head's coarser predictions, levels
  # 1..6 (64x64 .. 2x2, fine to coarse), e.g. '0.005,0.01,0.02,0.08,0.32,0.32';
  # each adds weight x the same loss against the target averaged over
  # 2^l x 2^l blocks and divided by 2^l (that level's pixels).
  config.loss.flow_pyramid_weights = ''
  # The batch key the flow term is trained against: 'flow' (the TV-L1
  # targets, official) or 'true_flow' (the exact motion; synthetic_me only).
  config.loss.flow_target = 'flow'

  config.optimizer = ml_collections.ConfigDict()
  # AdamW as the official code sets it.
  config.optimizer.learning_rate = 1e-4
  config.optimizer.weight_decay = 1e-3
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.999
  config.optimizer.eps = 1e-8
  # 'constant' (official) or 'cosine' decay to 0 over num_train_steps.
  config.optimizer.schedule = 'constant'
  # Linear warm-up steps before the schedule (0 = none).
  config.optimizer.warmup_steps = 0
  # Learning rates of named parameter groups as multiples of the schedule's:
  # '' = one learning rate for every layer (official), or e.g.
  # 'flow_refine=10' (groups: experiment.PARAMETER_GROUPS). Under AdamW a layer's
  # step does not grow with its loss weight, so this is what moves one group
  # faster (docs/RESULTS.md measures it on the flow layers).
  config.optimizer.lr_multipliers = ''

  # Global batch size (split over all devices of all processes).
  config.batch_size = 32
  # Global evaluation batch size; the last batch is padded and masked.
  config.eval_batch_size = 32
  # Training steps per LOSO fold (official 1000). 0 = evaluation only: every
  # fold scores config.init_from's weights untrained (init_from required).
  config.num_train_steps = 1000
  # Start every fold from this checkpoint instead of a fresh initialisation:
  # a fold model directory written by training (WORKDIR/folds/<fold>/model)
  # or a `python -m mol_jax.convert` output (its latest step). Its class
  # count and layers must be the configured model's; a checkpoint without
  # the flow refinement starts a model with it (the refinement's layers keep
  # their initialisation). results.json records the path and step. The
  # optimiser starts fresh. '' = initialise each fold from its seed.
  config.init_from = ''
  # A training stage that runs first, e.g. pre-training the flow layers on
  # the synthetic set's exact motion (configs/flow_pretrain.py): a whole
  # config of its own, empty = none. It trains into WORKDIR/pretrain
  # (resumable, its dataset built on first use like this one's, in this
  # config's data_dir) on its one fold (`folds`), whose model then starts
  # every fold of this run as `init_from` does (results.json records it).
  config.pretrain = ml_collections.ConfigDict()

  # Which folds (mol_jax/protocols.py): 'loso' (leave one subject out of one
  # dataset; MOL's), 'composite' (leave one subject out of several datasets
  # read as one, subjects named '<dataset>_<subject>'; also scored per
  # dataset) or 'lodo' (leave one dataset out: train on the others, test on
  # all of it). The last two take config.dataset as a comma-separated list of
  # sets with the same classes, e.g. 'casme2/3class,samm/3class,smic/3class'.
  config.protocol = 'loso'
  # Folds to run, comma-separated: held-out subjects, or datasets for 'lodo'
  # ('' = every fold).
  config.folds = ''
  # Evaluate the held-out subject every N steps (0 = only after the last
  # step). Needed for `report_best_on_test` and learning curves.
  config.eval_every_steps = 0
  # Also report the official model selection: the evaluation with the best
  # held-out accuracy. It selects on the test subject, so it is reported under
  # its own name (`best_on_test`), never mixed with the honest `fixed` result.
  config.report_best_on_test = False
  # What a test sample is: 'video' (the mean softmax of a video's clips, one
  # vote per video) or 'clip' (every n // 8 clip of a video counts, the
  # official count, which weighs long videos more). The same when a set keeps
  # one clip per video.
  config.eval_unit = 'video'
  # Compute the flow head in evaluation to report flow end-point error (it is
  # most of the evaluation cost; class logits do not need it).
  config.eval_with_flow = True

  # Write a resumable checkpoint every N steps (and at the end of each fold).
  config.checkpoint_every_steps = 200
  # Keep the per-step checkpoints of finished folds (the final model of each
  # fold is always kept in workdir/folds/<subject>/model).
  config.keep_fold_checkpoints = False
  # Log (progress bar, JSONL, TensorBoard) every N steps.
  config.log_every_steps = 10
  # Gradient norm of each loss term every N steps (0 = never; ~3 backward
  # passes each time).
  config.log_term_grad_norms_every_steps = 100

  config.mesh = ml_collections.ConfigDict()
  # Devices on the `data` axis (-1 = all devices of all processes).
  config.mesh.num_devices = -1
  # 'replicated' parameters (data parallel) or 'fsdp' (large parameters split
  # over the data axis).
  config.mesh.param_sharding = 'replicated'

  config.distributed = ml_collections.ConfigDict()
  # Call jax.distributed.initialize (multi-host). On TPU pods and SLURM the
  # remaining fields may stay empty: JAX detects them.
  config.distributed.initialize = False
  # 'host:port' of process 0.
  config.distributed.coordinator_address = ''
  # Number of processes and this one's id (-1 = detect).
  config.distributed.num_processes = -1
  config.distributed.process_id = -1

  # Seed of model initialisation, data order and dropout (fold i uses seed + i).
  config.seed = 0
  # Repeated runs: a comma-separated list such as '0,1,2' runs the whole
  # protocol once per seed (each in WORKDIR/seeds/<seed>/, resumable like a
  # fold) and reports the mean and standard deviation over seeds of every
  # pooled score beside each seed's; '' runs once with `seed`.
  config.seeds = ''
  return config
