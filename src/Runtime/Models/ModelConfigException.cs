namespace MoeRuntime.Runtime.Models;

/// <summary>A config.json we cannot use (unknown family, missing or bad field), or a layer that is not an MoE layer.</summary>
public sealed class ModelConfigException(string message, Exception? inner = null) : Exception(message, inner);
