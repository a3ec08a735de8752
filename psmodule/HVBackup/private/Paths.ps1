function ConvertTo-HVFileSystemPath {
    # A PowerShell path (relative, TestDrive:\, ~) as the file-system path the engine needs.
    [CmdletBinding()]
    [OutputType([string])]
    param([Parameter(Mandatory)] [string] $Path)
    $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
}
