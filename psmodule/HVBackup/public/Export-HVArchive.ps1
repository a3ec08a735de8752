function Export-HVArchive {
    <#
    .SYNOPSIS
    Exports restore points to tape-style archive media.

    .DESCRIPTION
    Writes restore points, with every chunk they need that the media pool does not already
    hold, to media of a pool: tar media files in a folder (-MediaPath) or a tape device
    (-Device). The pool's catalog is kept in the repository; media can be read back without
    it (Import-HVArchive). Without -Id, every restore point not yet in the pool is exported.

    .PARAMETER Repository
    The repository folder. Taken from the Repository property of Get-HVRestorePoint output.

    .PARAMETER Pool
    The media pool's name, e.g. weekly or offsite.

    .PARAMETER MediaPath
    The folder media files are written to (<pool>-<seq>.tar).

    .PARAMETER Device
    A tape device written as one sequential stream (\\.\Tape0, /dev/nst0). A tape change
    mid-export is not available through the module yet; size -Capacity to one tape.

    .PARAMETER Id
    The restore point to export (id or unique prefix). Taken from the Id property of Get-HVRestorePoint output.

    .PARAMETER VMName
    Only restore points of this VM.

    .PARAMETER Full
    Write every chunk the points need, even those the pool already holds (a self-contained set).

    .PARAMETER Capacity
    Capacity of one medium: bytes, or 4M, 100G, LTO-8.

    .PARAMETER RetentionDays
    Days before the media may be overwritten (recorded in their labels).

    .PARAMETER Password
    The password of an encrypted repository.

    .OUTPUTS
    HVBackup.ArchiveExport. Pool, Points, Media, ChunksWritten, ChunksAlreadyInPool, BytesWritten.

    .EXAMPLE
    Export-HVArchive -Repository D:\Backups\Repo1 -Pool weekly -MediaPath E:\Media

    Exports every restore point not yet in pool weekly to media files in E:\Media.

    .EXAMPLE
    Get-HVRestorePoint -Repository D:\Backups\Repo1 -VMName web01 -Latest | Export-HVArchive -Pool offsite -MediaPath F:\ -Full

    Writes web01's newest restore point as a self-contained set.

    .EXAMPLE
    Export-HVArchive -Repository D:\Backups\Repo1 -Pool monthly -Device \\.\Tape0 -Capacity LTO-8 -RetentionDays 365

    Exports to tape.
    #>
    [CmdletBinding(SupportsShouldProcess, DefaultParameterSetName = 'Folder')]
    [OutputType('HVBackup.ArchiveExport')]
    param(
        [Parameter(Mandatory, ValueFromPipelineByPropertyName)]
        [string] $Repository,

        [Parameter(Mandatory, ValueFromPipelineByPropertyName)]
        [string] $Pool,

        [Parameter(Mandatory, ParameterSetName = 'Folder')]
        [string] $MediaPath,

        [Parameter(Mandatory, ParameterSetName = 'Device')]
        [string] $Device,

        [Parameter(ValueFromPipelineByPropertyName)]
        [Alias('PointId')]
        [string] $Id,

        [Parameter(ValueFromPipelineByPropertyName)]
        [string] $VMName,

        [Parameter()] [switch] $Full,
        [Parameter()] [string] $Capacity,
        [Parameter()] [ValidateRange(0, 36500)] [int] $RetentionDays,
        [Parameter()] [System.Security.SecureString] $Password
    )
    process {
        $params = Get-HVArchiveParams -Cmdlet $PSCmdlet -Repository $Repository -Pool $Pool -MediaPath $MediaPath -Device $Device -Capacity $Capacity -RetentionDays $RetentionDays -VMName $VMName -Password $Password
        $repoPath = $params['repository']
        $params['full'] = [bool]$Full
        if ($Id) { $params['point'] = $Id }
        $what = 'every restore point not yet in the pool'
        if ($Id) { $what = "restore point $Id" }
        $where = $Device
        if ($MediaPath) { $where = $params['mediaDir'] }
        if (-not $PSCmdlet.ShouldProcess("Export $what from '$repoPath' to media pool '$Pool' on '$where'", "Export $what to '$where'?", 'Export-HVArchive')) { return }
        try {
            Invoke-HVEngine -Method 'exportArchive' -Params $params | ConvertTo-HVObject -TypeName 'HVBackup.ArchiveExport'
        } catch {
            $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $repoPath))
        }
    }
}
