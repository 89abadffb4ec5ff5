//! Command-line arguments (clap derive). Only syntax lives here; semantic checks happen when the
//! arguments become library configs (`to_spec`, `to_config`), before any work.

use clap::{Args, Parser, Subcommand, ValueEnum};
use relu_iht::problem::operator::Mode;
use relu_iht::tasks::planted::{PlantedSpec, Teacher};
use relu_iht::IhtConfig;

#[derive(Debug, Parser)]
#[command(
    name = "relu-iht",
    version,
    about = "Recover sparse two-layer ReLU networks by iterative hard thresholding"
)]
pub struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Recover a planted sparse network from Gaussian data and score it against the truth.
    Planted(PlantedArgs),
    /// Classify MNIST digits (binary 0 vs 1 with the scalar model).
    Mnist(MnistArgs),
    /// Fit an image as a function of its pixel coordinates and write the reconstruction.
    Inr(InrArgs),
    /// Time the gradient pass, support products and whole solves on each backend.
    Bench(BenchArgs),
    /// List the GPU adapters wgpu can see, with their limits.
    Devices(DevicesArgs),
    /// Fit your own data (X and y as .npy arrays, or a CSV table with a target column).
    Fit(FitArgs),
    /// Predict with a saved model on new inputs (.npy or CSV in, .npy or CSV out).
    Predict(PredictArgs),
    /// Render a saved INR model as an image at any size.
    Render(RenderArgs),
    /// Run a grid of (m, s, seed) for a task and method (the paper's figures, resumable) and
    /// draw its heatmaps, or the exact-recovery phase transition with --vary n.
    Sweep(super::sweep::SweepArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// A hardware GPU when there is one, else the CPU (says which on stderr).
    Auto,
    /// The WebGPU engine.
    Gpu,
    /// The CPU engine.
    Cpu,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum PrecisionChoice {
    /// f32 products and weights (SIMD kernels and `gemm`; every engine).
    #[default]
    F32,
    /// f64 products, residuals and weights on the CPU engine: the same bits on every machine,
    /// several times slower (scalar-output fits).
    F64,
}

impl PrecisionChoice {
    pub fn lib(self) -> relu_iht::engine::Precision {
        match self {
            PrecisionChoice::F32 => relu_iht::engine::Precision::F32,
            PrecisionChoice::F64 => relu_iht::engine::Precision::F64,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeChoice {
    /// Sequential-convex: random masks for the first steps, then h = w (the paper's default).
    Scp,
    /// Convex: fixed random masks throughout.
    Convex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TeacherChoice {
    /// y = Σ_j relu(X W_:,j), the paper's planted network.
    Relu,
    /// y = A w* in the solver's own convex model (the theory's setting).
    Convex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MethodChoice {
    /// Iterative hard thresholding.
    Iht,
    /// The baseline: a dense MLP trained with Adam, pruned by 10% of the remaining weights per
    /// round with rewinding (iterative magnitude pruning, SPEC §5).
    Imp,
}

/// Solver flags shared by every task.
#[derive(Debug, Args, Clone)]
pub struct SolverArgs {
    /// Hidden neurons (default: 100; 200 for inr).
    #[arg(long)]
    pub m: Option<usize>,
    /// Nonzero weights (default: 200; 2000 for inr).
    #[arg(long)]
    pub s: Option<usize>,
    /// Full-batch IHT steps (default: 15 for planted and mnist, 100 for inr, as the paper).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Epochs of minibatch IHT (requires --batch-size; replaces --steps).
    #[arg(long, requires = "batch_size")]
    pub epochs: Option<usize>,
    /// Rows per minibatch (default: full batch).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Random seed (data, generators, shuffles).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Generator mode.
    #[arg(long, value_enum, default_value_t = ModeChoice::Scp)]
    pub mode: ModeChoice,
    /// Armijo gradient steps on the support per IHT step (default: 10, the paper's; `inr` on a
    /// large photo: see the README).
    #[arg(long)]
    pub inner_steps: Option<usize>,
    /// Stop early once the relative residual or relative change of the weights is below this.
    #[arg(long, default_value_t = 0.0)]
    pub tol: f64,
    /// Support inflation: keep ceil(inflate·s) weights while iterating, prune to s and re-fit at
    /// the end; kept only when it beats the plain run (which is run too).
    #[arg(long, default_value_t = 1.0)]
    pub inflate: f64,
    /// Least-squares (CGLS) iterations on the final support (0 = off); kept only where it lowers
    /// the training MSE of the returned network.
    #[arg(long, default_value_t = 0)]
    pub refine: usize,
    /// Sequential-convex: use the random generators through this global step, then h = w
    /// (default: the paper's rule, step 1 in full batch, epoch 0 and the first batch of epoch 1
    /// with minibatches; `inr` on a large photo: see the README).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Minibatch runs: return the s largest of the mean of the iterates of the last fraction of
    /// the steps (tail averaging; default: 0.15 for `inr` and `fit` without --paper, none for
    /// the paper's tasks; 0 turns it off).
    #[arg(long)]
    pub average: Option<f64>,
    /// Hidden layers, fitted greedily one after the other with s / layers weights each.
    #[arg(long, default_value_t = 1)]
    pub layers: usize,
    /// Training method.
    #[arg(long, value_enum, default_value_t = MethodChoice::Iht)]
    pub method: MethodChoice,
    /// IMP: report the first pruning round at or below each of these budgets (one result per
    /// budget; default: --s).
    #[arg(long, value_delimiter = ',')]
    pub imp_budgets: Option<Vec<usize>>,
    /// IMP: also retrain once from the rewound weights at each result's final mask.
    #[arg(long)]
    pub imp_retrain: bool,
    /// IMP: Adam's learning rate.
    #[arg(long, default_value_t = 1e-3, value_parser = finite_f32)]
    pub lr: f32,
    /// Compute engine.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Arithmetic: f32, or f64 on the CPU engine (products, residuals, step sizes and weights;
    /// machine-independent results, several times slower; scalar-output IHT fits).
    #[arg(long, value_enum, default_value_t = PrecisionChoice::F32)]
    pub precision: PrecisionChoice,
    /// GPU engine: store X in f16 on the device (half the memory and bandwidth of X; products and
    /// sums stay in f32), where the adapter offers f16 in shaders (else X stays in f32).
    #[arg(long)]
    pub gpu_f16: bool,
    /// GPU engine: sum over workgroups with subgroup operations (one barrier instead of seven),
    /// where the adapter offers them (else the fixed tree stays).
    #[arg(long)]
    pub gpu_subgroups: bool,
    /// Save the solver's state to this file (atomically) every --checkpoint-every steps.
    #[arg(long)]
    pub checkpoint: Option<std::path::PathBuf>,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 10, requires = "checkpoint")]
    pub checkpoint_every: usize,
    /// Continue from --checkpoint (which must come from the same command) instead of starting over.
    #[arg(long, requires = "checkpoint")]
    pub resume: bool,
    /// Device memory budget in bytes for the GPU engine (data beyond it is streamed by blocks).
    #[arg(long, value_parser = parse_bytes)]
    pub device_memory: Option<u64>,
    /// Write a per-step trace of the scalar solve (JSON lines: layer, step, relative residual,
    /// step sizes, trials, resets, support changes, nonzeros, ‖w‖) to this file, atomically at
    /// the end.
    #[arg(long)]
    pub trace: Option<std::path::PathBuf>,
    /// Save the fitted network as a safetensors file (PyTorch's nn.Sequential layout).
    #[arg(long)]
    pub save: Option<std::path::PathBuf>,
    /// Print one JSON object per run on stdout instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// GPU engine: time every kernel with timestamp queries (one small extra readback per
    /// submission) and print the device milliseconds and dispatches per kernel on stderr at the
    /// end.
    #[arg(long)]
    pub profile: bool,
}

impl SolverArgs {
    /// The solver config (validated later against the problem size).
    /// The width, or the task's default.
    /// Refuses checkpoint flags on a task that does not write checkpoints (they would be silent
    /// no-ops).
    pub fn refuse_checkpoint(&self, task: &str) -> anyhow::Result<()> {
        if let Some(path) = &self.checkpoint {
            anyhow::bail!(
                "invalid --checkpoint = {} for {task}: checkpoints cover inr fits in this build",
                path.display()
            );
        }
        Ok(())
    }

    /// Checks `--save` before any work: IHT only, a `.safetensors` name, a writable place.
    pub fn check_save(&self) -> anyhow::Result<()> {
        let Some(path) = &self.save else {
            return Ok(());
        };
        if self.method == MethodChoice::Imp {
            anyhow::bail!(
                "invalid --save = {} with --method imp: the model file holds IHT fits",
                path.display()
            );
        }
        if path
            .extension()
            .is_none_or(|e| !e.eq_ignore_ascii_case("safetensors"))
        {
            anyhow::bail!(
                "invalid --save = {}: the model is written as safetensors (use a .safetensors name)",
                path.display()
            );
        }
        relu_iht::atomic::check_writable("--save", path)?;
        Ok(())
    }

    /// Checks `--trace` before any work: IHT only, a writable place.
    pub fn check_trace(&self) -> anyhow::Result<()> {
        let Some(path) = &self.trace else {
            return Ok(());
        };
        if self.method == MethodChoice::Imp {
            anyhow::bail!(
                "invalid --trace = {} with --method imp: the trace follows IHT steps",
                path.display()
            );
        }
        relu_iht::atomic::check_writable("--trace", path)?;
        Ok(())
    }

    /// The GPU engine's options from `--gpu-f16` and `--gpu-subgroups`.
    pub fn gpu_options(&self) -> relu_iht::gpu::context::GpuOptions {
        relu_iht::gpu::context::GpuOptions {
            x_f16: self.gpu_f16,
            subgroups: self.gpu_subgroups,
        }
    }

    /// Refuses `--precision f64` where the fit runs in f32 only (`what` says which fit).
    pub fn refuse_f64(&self, what: &str) -> anyhow::Result<()> {
        if self.precision == PrecisionChoice::F64 {
            anyhow::bail!("invalid --precision = f64 for {what}: it runs in f32 only");
        }
        Ok(())
    }

    /// Refuses `--trace` and `--warmup` on the vector-output model, whose steps they do not
    /// cover.
    pub fn refuse_trace(&self) -> anyhow::Result<()> {
        if let Some(path) = &self.trace {
            anyhow::bail!(
                "invalid --trace = {}: the trace covers the scalar model's steps, not the vector-output model's",
                path.display()
            );
        }
        if let Some(w) = self.warmup {
            anyhow::bail!(
                "invalid --warmup = {w}: the vector-output model keeps the paper's schedule"
            );
        }
        Ok(())
    }

    pub fn m_or(&self, default: usize) -> usize {
        self.m.unwrap_or(default)
    }

    /// The solver config with the task's default steps and budget (validated later against the
    /// problem size).
    pub fn to_config(&self, default_steps: usize, default_s: usize) -> anyhow::Result<IhtConfig> {
        if let (Some(steps), Some(_)) = (self.steps, self.epochs) {
            anyhow::bail!("invalid --steps = {steps} with --epochs: --epochs replaces --steps");
        }
        if self.checkpoint_every == 0 {
            anyhow::bail!("invalid --checkpoint-every = 0: must be at least 1");
        }
        let steps = self.steps.unwrap_or(default_steps);
        if self.layers == 0 {
            anyhow::bail!("invalid --layers = 0: must be at least 1");
        }
        let budget = self.s.unwrap_or(default_s);
        if self.layers > budget.max(1) {
            anyhow::bail!(
                "invalid --layers = {}: each layer needs at least one of the s = {budget} weights",
                self.layers
            );
        }
        if let (Some(w), ModeChoice::Convex) = (self.warmup, self.mode) {
            anyhow::bail!("invalid --warmup = {w} with --mode convex: the convex mode uses the random generators throughout");
        }
        let (steps, batch_size) = match (self.batch_size, self.epochs) {
            (Some(b), Some(e)) => (e, Some(b)),
            (Some(b), None) => (steps, Some(b)),
            (None, _) => (steps, None),
        };
        Ok(IhtConfig {
            s: self.s.unwrap_or(default_s),
            steps,
            mode: match self.mode {
                ModeChoice::Scp => Mode::SequentialConvex,
                ModeChoice::Convex => Mode::Convex,
            },
            seed: self.seed,
            batch_size,
            inner_steps: self.inner_steps.unwrap_or(10),
            tol: self.tol,
            inflate: self.inflate,
            refine: self.refine,
            warmup: self.warmup,
            average: self.average.filter(|&a| a != 0.0),
            ..IhtConfig::new(1, 1)
        })
    }
}

#[derive(Debug, Args, Clone)]
pub struct PlantedArgs {
    /// Training points.
    #[arg(long, default_value_t = 50_000)]
    pub n: usize,
    /// Input dimension.
    #[arg(long, default_value_t = 100)]
    pub d: usize,
    /// Network that produced the targets.
    #[arg(long, value_enum, default_value_t = TeacherChoice::Relu)]
    pub teacher: TeacherChoice,
    /// Outputs: 1 (the scalar, fused model) or more (the vector-output model, y = relu(X W1) W2).
    #[arg(long, default_value_t = 1)]
    pub k: usize,
    /// How the vector-output model keeps its s weights (k > 1).
    #[arg(long, value_enum, default_value_t = SelectChoice::Sketch)]
    pub select: SelectChoice,
    #[command(flatten)]
    pub solver: SolverArgs,
}

impl PlantedArgs {
    /// The problem description (validated).
    pub fn to_spec(&self) -> anyhow::Result<PlantedSpec> {
        let spec = PlantedSpec {
            n: self.n,
            d: self.d,
            m: self.solver.m_or(100),
            s: self.solver.s.unwrap_or(200),
            seed: self.solver.seed,
            teacher: match self.teacher {
                TeacherChoice::Relu => Teacher::Relu,
                TeacherChoice::Convex => Teacher::Convex,
            },
        };
        spec.validate()?;
        Ok(spec)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClassesChoice {
    /// Digits 0 and 1, labels 0/1, scalar model and least squares; predicts 1 when ŷ ≥ 0.5.
    Binary,
    /// All ten digits: the vector-output model (k = 10), argmax prediction.
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LossChoice {
    /// Softmax cross-entropy.
    CrossEntropy,
    /// Mean squared error against one-hot targets.
    Mse,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SelectChoice {
    /// Largest count-sketch estimates of the cumulative updates (the paper's code).
    Sketch,
    /// Largest magnitudes.
    Magnitude,
}

#[derive(Debug, Args, Clone)]
pub struct MnistArgs {
    /// Which digits.
    #[arg(long, value_enum, default_value_t = ClassesChoice::Binary)]
    pub classes: ClassesChoice,
    /// Data directory (MNIST IDX files under DIR/mnist; see scripts/fetch-data.sh).
    #[arg(long, default_value = "data")]
    pub data_dir: std::path::PathBuf,
    /// Training images per digit (the paper: 5000).
    #[arg(long, default_value_t = 5000)]
    pub train_per_class: usize,
    /// Test images per digit, taken after the training ones (the paper: 1000).
    #[arg(long, default_value_t = 1000)]
    pub test_per_class: usize,
    #[command(flatten)]
    pub vector: VectorArgs,
    #[command(flatten)]
    pub solver: SolverArgs,
}

/// Flags of the vector-output model (10-class MNIST, `fit` with classes or several targets).
#[derive(Debug, Args, Clone)]
pub struct VectorArgs {
    /// Loss of a classifier.
    #[arg(long, value_enum, default_value_t = LossChoice::CrossEntropy)]
    pub loss: LossChoice,
    /// How the vector-output model keeps its s weights.
    #[arg(long, value_enum, default_value_t = SelectChoice::Sketch)]
    pub select: SelectChoice,
    /// Fixed step size of the vector-output model (default: SPEC §3's rule for mnist, probed on
    /// the data's scale for fit).
    #[arg(long, value_parser = finite_f32)]
    pub step_size: Option<f32>,
}

#[derive(Debug, Args, Clone)]
pub struct InrArgs {
    /// A PNG or JPEG image (default: the bundled CC0 photo assets/camera.png, compiled in).
    #[arg(long, conflicts_with = "mnist_digit")]
    pub image: Option<std::path::PathBuf>,
    /// Fit this image of the paper's 10-class MNIST test split instead (1000 is its first "1").
    #[arg(long)]
    pub mnist_digit: Option<usize>,
    /// Data directory for --mnist-digit (MNIST IDX files under DIR/mnist).
    #[arg(long, default_value = "data")]
    pub data_dir: std::path::PathBuf,
    /// The paper's settings for every flag not given: raw pixel coordinates, σ = 2 for an MNIST
    /// digit and 5 for other images, 1500 features, m = 200, s = 2000, 100 full-batch steps.
    #[arg(long)]
    pub paper: bool,
    /// Downscale images whose longer side exceeds this (default: none, the whole image is fitted).
    #[arg(long)]
    pub max_side: Option<usize>,
    /// Fourier features, the model's d (default: 1500, the paper's; photos: see the README).
    #[arg(long)]
    pub features: Option<usize>,
    /// Standard deviation of the Fourier frequencies (default: 2 for an MNIST digit, 5 with
    /// pixel coordinates, more with unit coordinates: see the README).
    #[arg(long, value_parser = finite_f32)]
    pub sigma: Option<f32>,
    /// σ of the high band of frequencies mixed into a photo's features (default: 40 with unit
    /// coordinates; see the README).
    #[arg(long)]
    pub sigma_high: Option<f32>,
    /// Share of the frequencies in the high band (default: 0.3 with unit coordinates or with
    /// --sigma-high, else 0; 0 turns the band off, one σ as the paper).
    #[arg(long)]
    pub high_share: Option<f32>,
    /// Pixel coordinates fed to the features: `unit` divides the indices by the longer side (in
    /// [0, 1), σ then counts cycles per image), `pixel` uses the raw indices as the paper does
    /// (default: unit for photos; pixel for an MNIST digit and with --paper).
    #[arg(long, value_enum)]
    pub coords: Option<CoordsChoice>,
    /// The same as --coords unit.
    #[arg(long, hide = true, conflicts_with = "coords")]
    pub unit_coords: bool,
    /// Where to write the reconstruction (PNG).
    #[arg(long, default_value = "inr.png")]
    pub out: std::path::PathBuf,
    /// Held-out test: fit only the pixels of even row and column (the half-resolution sub-grid),
    /// then score the network on every pixel of the image (`psnr`), on the fitted ones
    /// (`psnr_train`) and on the others (`psnr_heldout`); --out gets the full-size rendering.
    #[arg(long, conflicts_with = "mnist_digit")]
    pub holdout: bool,
    /// Draw PSNR against solve seconds (PNG): the fit scored along the way on a fixed sample of
    /// up to 16384 pixels (the time that takes is left out), the last point on every pixel.
    #[arg(long)]
    pub curve: Option<std::path::PathBuf>,
    /// A peer's runs for the curve: JSON lines with `seconds` and `psnr` (one per run, as
    /// ../bench/inr_peer.py prints), drawn beside relu-iht's.
    #[arg(long, requires = "curve")]
    pub peer: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub solver: SolverArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CoordsChoice {
    /// Pixel indices divided by the image's longer side.
    Unit,
    /// Raw pixel indices (the paper's).
    Pixel,
}

#[derive(Debug, Args, Clone)]
pub struct FitArgs {
    /// Inputs: a .npy array of shape (n, d) (float or integer, C or Fortran order), or a CSV table
    /// with a header line (all columns but --target are features).
    #[arg(long)]
    pub x: std::path::PathBuf,
    /// Targets: a .npy array of shape (n,) or (n, k), or a CSV whose columns are the targets.
    #[arg(long, conflicts_with = "target")]
    pub y: Option<std::path::PathBuf>,
    /// The CSV column of X (and of --x-test) that holds the targets.
    #[arg(long)]
    pub target: Option<String>,
    /// Test inputs, scored after the fit (same format as --x).
    #[arg(long)]
    pub x_test: Option<std::path::PathBuf>,
    /// Test targets (with --x-test; a CSV test set takes them from its --target column).
    #[arg(long, requires = "x_test")]
    pub y_test: Option<std::path::PathBuf>,
    /// Treat integer targets as class labels: the vector-output model with one output per class,
    /// argmax prediction, accuracy.
    #[arg(long)]
    pub classes: bool,
    /// The paper's scalar solver, without the safeguards of the default one (signed neurons:
    /// units `σ_j relu(σ_j x·w_j)` with signs fixed when the masks start to follow the weights).
    #[arg(long)]
    pub paper: bool,
    #[command(flatten)]
    pub vector: VectorArgs,
    #[command(flatten)]
    pub solver: SolverArgs,
}

#[derive(Debug, Args, Clone)]
pub struct PredictArgs {
    /// A model file written by --save.
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// Inputs: a .npy array of shape (n, d), or a CSV table with a header (a model fitted on CSV
    /// columns takes them by name).
    #[arg(long)]
    pub x: std::path::PathBuf,
    /// Where to write the predictions: .npy, or .csv.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Print one JSON object on stdout instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct RenderArgs {
    /// An INR model file written by `inr --save`.
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// Output size, WIDTHxHEIGHT (e.g. 1024x1024), or one number for the longer side (the
    /// fitted aspect ratio kept); default: the fitted size.
    #[arg(long)]
    pub size: Option<String>,
    /// Where to write the image (PNG).
    #[arg(long, default_value = "render.png")]
    pub out: std::path::PathBuf,
    /// Print one JSON object on stdout instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// Training points (comma-separated list for a sweep).
    #[arg(long, value_delimiter = ',', default_value = "50000")]
    pub n: Vec<usize>,
    /// Input dimension.
    #[arg(long, default_value_t = 100)]
    pub d: usize,
    /// Hidden neurons (comma-separated list).
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    pub m: Vec<usize>,
    /// Sparsity budgets (comma-separated list).
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    pub s: Vec<usize>,
    /// IHT steps of the timed solve (0: time only the gradient pass).
    #[arg(long, default_value_t = 15)]
    pub steps: usize,
    /// Repetitions of the gradient pass (the best is reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Engines to compare, the CPU always first: auto = the CPU and a hardware GPU when there is
    /// one; gpu = the CPU and the GPU engine on any adapter (a software one included); cpu.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// f64: add a row for the CPU engine in f64 (`--precision f64` of the tasks).
    #[arg(long, value_enum, default_value_t = PrecisionChoice::F32)]
    pub precision: PrecisionChoice,
    /// GPU rows: X stored in f16 on the device (`--gpu-f16` of the tasks).
    #[arg(long)]
    pub gpu_f16: bool,
    /// GPU rows: workgroup sums with subgroup operations (`--gpu-subgroups` of the tasks).
    #[arg(long)]
    pub gpu_subgroups: bool,
    /// Device memory budget in bytes for the GPU engine.
    #[arg(long, value_parser = parse_bytes)]
    pub device_memory: Option<u64>,
    /// The GPU's fp32 peak in GFLOP/s (from its vendor's sheet): GPU rows then report the
    /// fraction of it the gradient kernel reaches (from timestamps where the device has them,
    /// else from wall time).
    #[arg(long, value_parser = parse_peak_gflops)]
    pub peak_gflops: Option<f64>,
    /// Print one JSON object per configuration and backend.
    #[arg(long)]
    pub json: bool,
}

/// `--peak-gflops`: a positive, finite number.
fn parse_peak_gflops(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of GFLOP/s")),
    }
}

#[derive(Debug, Args, Clone)]
pub struct DevicesArgs {
    /// One JSON object per adapter.
    #[arg(long)]
    pub json: bool,
}

/// `--step-size` of the vector-output model: SPEC §3's steps are 0.001 to 2; far beyond, the
/// fixed-step fit cannot converge.
pub fn check_step_size(step: Option<f32>) -> anyhow::Result<()> {
    if let Some(alpha) = step {
        if !(alpha > 0.0 && alpha <= 100.0) {
            anyhow::bail!("invalid --step-size = {alpha}: must be a number in (0, 100]");
        }
    }
    Ok(())
}

/// Bytes with an optional K/M/G suffix (powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("unknown unit in '{s}' (use K, M or G)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let v: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a byte count"))?;
    match v.checked_mul(mult) {
        Some(0) | None => Err(format!("'{s}' must be a positive byte count")),
        Some(b) => Ok(b),
    }
}

impl From<SelectChoice> for relu_iht::problem::model::Select {
    fn from(c: SelectChoice) -> Self {
        match c {
            SelectChoice::Sketch => Self::Sketch,
            SelectChoice::Magnitude => Self::Magnitude,
        }
    }
}

impl From<LossChoice> for relu_iht::problem::model::Loss {
    fn from(c: LossChoice) -> Self {
        match c {
            LossChoice::CrossEntropy => Self::CrossEntropy,
            LossChoice::Mse => Self::Mse,
        }
    }
}

/// A finite number that fits an f32, refused as typed otherwise (so `1e300` is not reported as
/// `inf` later).
fn finite_f32(text: &str) -> Result<f32, String> {
    let v: f64 = text.trim().parse().map_err(|e| format!("{e}"))?;
    if !v.is_finite() || v.abs() > f32::MAX as f64 {
        return Err(format!("{text} is not a finite 32-bit number"));
    }
    Ok(v as f32)
}
