function ConvertTo-HVFileSystemPath {
    # A PowerShell path (relative, TestDrive:\, ~) as the file-system path the engine needs.
    # A path that cannot be resolved (no such drive) stops the calling cmdlet with an
    # ObjectNotFound error naming the path.
    [CmdletBinding()]
    [OutputType([string])]
    param(
        [Parameter(Mandatory)] [string] $Path,
        [System.Management.Automation.PSCmdlet] $Cmdlet
    )
    try {
        $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
    } catch {
        $inner = $_.Exception
        if ($null -ne $inner.InnerException) { $inner = $inner.InnerException }
        $ex = New-HVEngineException -Code 'ERR_NOT_FOUND' -Message "path '$Path' cannot be used: $($inner.Message)" -Target $Path
        if ($null -ne $Cmdlet) { $Cmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $ex -TargetObject $Path)) }
        throw $ex
    }
}
