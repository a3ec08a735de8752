# Engine errors -> PowerShell ErrorRecords. The engine's stable codes (core/errors.ts) pick
# the ErrorCategory; the error id is "HVBackup.<code>" (PowerShell appends ",<cmdlet>").

$script:HVErrorCategories = @{
    'ERR_NOT_FOUND'         = [System.Management.Automation.ErrorCategory]::ObjectNotFound
    'ERR_INVALID_ARGUMENT'  = [System.Management.Automation.ErrorCategory]::InvalidArgument
    'ERR_CORRUPT'           = [System.Management.Automation.ErrorCategory]::InvalidData
    'ERR_LOCKED'            = [System.Management.Automation.ErrorCategory]::ResourceBusy
    'ERR_AUTH'              = [System.Management.Automation.ErrorCategory]::AuthenticationError
    'ERR_CANCELLED'         = [System.Management.Automation.ErrorCategory]::OperationStopped
    'ERR_ALREADY_EXISTS'    = [System.Management.Automation.ErrorCategory]::ResourceExists
    'ERR_UNSUPPORTED'       = [System.Management.Automation.ErrorCategory]::NotImplemented
    'ERR_IO'                = [System.Management.Automation.ErrorCategory]::WriteError
}

function ConvertTo-HVErrorCategory {
    [CmdletBinding()]
    [OutputType([System.Management.Automation.ErrorCategory])]
    param([string] $Code)
    if ($script:HVErrorCategories.ContainsKey($Code)) { return $script:HVErrorCategories[$Code] }
    [System.Management.Automation.ErrorCategory]::NotSpecified
}

function New-HVEngineException {
    # An exception that carries the engine's error code, target and data (in .Data).
    [CmdletBinding()]
    [OutputType([System.Exception])]
    param([string] $Code, [string] $Message, [object] $Target, [object] $Data)
    $ex = New-Object System.Exception($Message)
    $ex.Data['HVBackup.Code'] = $Code
    $ex.Data['HVBackup.Target'] = $Target
    $ex.Data['HVBackup.Data'] = $Data
    $ex
}

function New-HVErrorRecord {
    # An ErrorRecord for an engine error (or any exception) about TargetObject.
    [CmdletBinding()]
    [OutputType([System.Management.Automation.ErrorRecord])]
    param(
        [Parameter(Mandatory)] [object] $ErrorObject,
        [object] $TargetObject
    )
    $ex = $ErrorObject
    if ($ErrorObject -is [System.Management.Automation.ErrorRecord]) { $ex = $ErrorObject.Exception }
    $code = $null
    if ($ex -is [System.Exception]) { $code = $ex.Data['HVBackup.Code'] }
    if (-not $code) {
        # Not from the engine: keep PowerShell's own record (parameter errors and the like).
        if ($ErrorObject -is [System.Management.Automation.ErrorRecord]) { return $ErrorObject }
        $code = 'ERR_INTERNAL'
    }
    if ($null -eq $TargetObject) { $TargetObject = $ex.Data['HVBackup.Target'] }
    $record = New-Object System.Management.Automation.ErrorRecord($ex, "HVBackup.$code", (ConvertTo-HVErrorCategory -Code $code), $TargetObject)
    if ($code -eq 'ERR_ENGINE_EXITED') {
        $record.ErrorDetails = New-Object System.Management.Automation.ErrorDetails("$($ex.Message) The next HVBackup command starts a new engine.")
    }
    $record
}

function New-HVResultErrorRecord {
    # An ErrorRecord for one failed item of a batch (e.g. a BackupResult with status failed).
    [CmdletBinding()]
    [OutputType([System.Management.Automation.ErrorRecord])]
    param([object] $ErrorInfo, [object] $TargetObject, [string] $Context)
    $message = [string]$ErrorInfo.message
    if ($Context) { $message = "${Context}: $message" }
    $ex = New-HVEngineException -Code ([string]$ErrorInfo.code) -Message $message -Target (Get-HVProperty $ErrorInfo 'target')
    New-HVErrorRecord -ErrorObject $ex -TargetObject $TargetObject
}

function Invoke-HVVerifyReport {
    # verifyRepository through the engine for the calling cmdlet: the report as an
    # HVBackup.VerifyReport, each problem written as its non-terminating error (category
    # InvalidData) naming the chunk or object and the restore points it breaks; an engine
    # failure (a repository that does not open) is its terminating error.
    [CmdletBinding()]
    param([hashtable] $Params, [string] $Repository, [System.Management.Automation.PSCmdlet] $Cmdlet)
    try {
        $report = Invoke-HVEngine -Method 'verifyRepository' -Params $Params
    } catch {
        $Cmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $Repository))
    }
    $obj = ConvertTo-HVObject -InputObject $report -TypeName 'HVBackup.VerifyReport'
    foreach ($problem in @($report.problems)) {
        if ($null -eq $problem) { continue }
        $what = Get-HVProperty $problem 'chunk'
        if (-not $what) { $what = Get-HVProperty $problem 'object' }
        $info = [pscustomobject]@{ code = 'ERR_CORRUPT'; message = "$what $($problem.problem) (breaks $(@($problem.points) -join ', '))" }
        $Cmdlet.WriteError((New-HVResultErrorRecord -ErrorInfo $info -TargetObject $what -Context "Repository '$Repository'"))
    }
    $obj
}
