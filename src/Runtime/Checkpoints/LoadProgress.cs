namespace MoeRuntime.Runtime.Checkpoints;

/// <summary>
/// Progress of a layer load, reported through <see cref="IProgress{T}"/> so the library stays free of any
/// console: the CLI turns these into a progress bar (or plain lines when output is redirected).
/// </summary>
/// <param name="Stage">What is being loaded, e.g. "experts" or "shared expert".</param>
/// <param name="Done">Units finished in this stage.</param>
/// <param name="Total">Units in this stage.</param>
/// <param name="BytesRead">Checkpoint bytes read so far over the whole load.</param>
public readonly record struct LoadProgress(string Stage, int Done, int Total, long BytesRead);
