function Import-HVArchive {
    <#
    .SYNOPSIS
    Reads archive media and rebuilds their pool's catalog.

    .DESCRIPTION
    Scans media files alone (no repository needed) and reports the pool, media, restore
    points and chunks they hold. With -Repository, the rebuilt catalog is stored in that
    repository, replacing a lost or damaged one; the media must come from it. Media files
    come in order, from the pipeline (Get-ChildItem) or -MediaPath.

    .PARAMETER MediaPath
    The media files, in order. Accepts pipeline input, also by the property name FullName.

    .PARAMETER Repository
    Store the rebuilt catalog in this repository.

    .PARAMETER Password
    The password of an encrypted repository. Media of an encrypted repository need it even without
    -Repository: their restore points are read from the sealed manifests on the media.

    .OUTPUTS
    HVBackup.ArchiveCatalog. Pool, RepositoryId, Encrypted, Media, Points, Chunks.

    .EXAMPLE
    Get-ChildItem E:\Media\weekly-*.tar | Sort-Object Name | Import-HVArchive

    Lists what the weekly media hold.

    .EXAMPLE
    Import-HVArchive -MediaPath E:\Media\weekly-1.tar, E:\Media\weekly-2.tar -Repository D:\Backups\Repo1

    Rebuilds pool weekly's catalog in the repository.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('HVBackup.ArchiveCatalog')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName')]
        [string[]] $MediaPath,

        [Parameter()]
        [string] $Repository,

        [Parameter()]
        [System.Security.SecureString] $Password
    )
    begin {
        $media = New-Object System.Collections.Generic.List[string]
    }
    process {
        foreach ($m in $MediaPath) { $media.Add((ConvertTo-HVFileSystemPath $m -Cmdlet $PSCmdlet)) }
    }
    end {
        if ($media.Count -eq 0) { return }
        $params = @{ media = $media.ToArray() }
        if ($Repository) {
            $params['repository'] = ConvertTo-HVFileSystemPath $Repository -Cmdlet $PSCmdlet
            if (-not $PSCmdlet.ShouldProcess("Store the catalog rebuilt from $($media.Count) medium/media in repository '$($params['repository'])'", 'Replace the catalog?', 'Import-HVArchive')) { return }
        }
        Add-HVPassword -Params $params -Password $Password
        try {
            Invoke-HVEngine -Method 'importArchive' -Params $params | ConvertTo-HVObject -TypeName 'HVBackup.ArchiveCatalog'
        } catch {
            $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject ($media -join ', ')))
        }
    }
}
