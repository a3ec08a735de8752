function Set-HVRepositoryKey {
    <#
    .SYNOPSIS
    Changes a password of an encrypted repository.

    .DESCRIPTION
    Replaces the password -Password with -NewPassword: writes a key file for -NewPassword,
    proves it opens the repository, then removes the key file -Password opened. The
    repository's data is not rewritten, and other passwords (key files) keep working. An
    interruption between the two steps leaves both passwords working, never neither.

    .PARAMETER Repository
    The encrypted repository's folder. Accepts pipeline input by the property name Repository or Path.

    .PARAMETER Password
    The current password to replace.

    .PARAMETER NewPassword
    The password that replaces it.

    .OUTPUTS
    HVBackup.RepositoryKey. The new key file's Id, Created, Hostname and User.

    .EXAMPLE
    Set-HVRepositoryKey -Repository E:\Secure -Password $current -NewPassword (Read-Host -AsSecureString 'New password')

    Changes the repository password; the old one no longer opens the repository.

    .EXAMPLE
    Get-HVRepository E:\Secure -Password $current | Set-HVRepositoryKey -Password $current -NewPassword $next -WhatIf

    Shows which repository's password would be changed, without changing it.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('HVBackup.RepositoryKey')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [Alias('Path')]
        [string] $Repository,

        [Parameter(Mandatory)]
        [System.Security.SecureString] $Password,

        [Parameter(Mandatory)]
        [System.Security.SecureString] $NewPassword
    )
    process {
        $repoPath = ConvertTo-HVFileSystemPath $Repository -Cmdlet $PSCmdlet
        if (-not $PSCmdlet.ShouldProcess($repoPath, 'Change a password (replace its key file)')) { return }
        $params = Get-HVKeyChangeParams -Repository $repoPath -Password $Password -NewPassword $NewPassword
        try {
            $r = Invoke-HVEngine -Method 'changeRepositoryPassword' -Params $params
            Invoke-HVEngine -Method 'listRepositoryKeys' -Params @{ repository = $repoPath; password = $params['newPassword'] } |
                Where-Object { $_.id -eq $r.added } | ConvertTo-HVRepositoryKey -Repository $repoPath
        } catch {
            $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $repoPath))
        }
    }
}
