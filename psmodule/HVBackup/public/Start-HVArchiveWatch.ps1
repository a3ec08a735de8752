function Start-HVArchiveWatch {
    <#
    .SYNOPSIS
    Exports every new restore point to a media pool as it lands (linked archive).

    .DESCRIPTION
    Watches a repository and exports each new restore point to the media pool as soon as it
    is written, until Ctrl+C or until -Duration has passed; then it writes a summary of what
    it exported. Run it in its own PowerShell window or job beside the backups.

    .PARAMETER Repository
    The repository folder to watch.

    .PARAMETER Pool
    The media pool's name.

    .PARAMETER MediaPath
    The folder media files are written to.

    .PARAMETER Device
    A tape device written as one sequential stream.

    .PARAMETER VMName
    Only restore points of this VM.

    .PARAMETER Capacity
    Capacity of one medium: bytes, or 4M, 100G, LTO-8.

    .PARAMETER RetentionDays
    Days before the media may be overwritten.

    .PARAMETER Duration
    Stop after this long (default: run until Ctrl+C).

    .PARAMETER Password
    The password of an encrypted repository.

    .OUTPUTS
    HVBackup.ArchiveWatch. Pool, Since, Exported (restore point ids) and Failed.

    .EXAMPLE
    Start-HVArchiveWatch -Repository D:\Backups\Repo1 -Pool offsite -MediaPath \\nas\media

    Exports each new restore point to the offsite pool until Ctrl+C.

    .EXAMPLE
    Start-Job { Import-Module HVBackup; Start-HVArchiveWatch -Repository D:\Backups\Repo1 -Pool nightly -MediaPath E:\Media -Duration (New-TimeSpan -Hours 8) }

    Watches for one night in a background job.
    #>
    [CmdletBinding(SupportsShouldProcess, DefaultParameterSetName = 'Folder')]
    [OutputType('HVBackup.ArchiveWatch')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [Alias('Path')]
        [string] $Repository,

        [Parameter(Mandatory, ValueFromPipelineByPropertyName)]
        [string] $Pool,

        [Parameter(Mandatory, ParameterSetName = 'Folder')]
        [string] $MediaPath,

        [Parameter(Mandatory, ParameterSetName = 'Device')]
        [string] $Device,

        [Parameter()] [string] $VMName,
        [Parameter()] [string] $Capacity,
        [Parameter()] [ValidateRange(0, 36500)] [int] $RetentionDays,
        [Parameter()] [timespan] $Duration,
        [Parameter()] [System.Security.SecureString] $Password
    )
    process {
        $params = Get-HVArchiveParams -Cmdlet $PSCmdlet -Repository $Repository -Pool $Pool -MediaPath $MediaPath -Device $Device -Capacity $Capacity -RetentionDays $RetentionDays -VMName $VMName -Password $Password
        $repoPath = $params['repository']
        if (-not $PSCmdlet.ShouldProcess("Export every new restore point of '$repoPath' to media pool '$Pool' as it lands", "Start watching '$repoPath'?", 'Start-HVArchiveWatch')) { return }
        $cancelAfter = 0
        if ($null -ne $Duration -and $Duration.TotalMilliseconds -gt 0) { $cancelAfter = [int][math]::Min([int]::MaxValue, $Duration.TotalMilliseconds) }
        try {
            Invoke-HVEngine -Method 'watchArchive' -Params $params -CancelAfterMs $cancelAfter | ConvertTo-HVObject -TypeName 'HVBackup.ArchiveWatch'
        } catch {
            $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $repoPath))
        }
    }
}
