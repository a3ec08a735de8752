function ConvertTo-HVRepositoryKey {
    # An engine RepositoryKeyInfo as HVBackup.RepositoryKey, with the repository it belongs to
    # (so it pipes into Remove-HVRepositoryKey).
    [CmdletBinding()]
    param([Parameter(ValueFromPipeline)] [object] $InputObject, [string] $Repository)
    process {
        if ($null -eq $InputObject) { return }
        $obj = ConvertTo-HVObject -InputObject $InputObject -TypeName 'HVBackup.RepositoryKey'
        $obj | Add-Member -NotePropertyName 'Repository' -NotePropertyValue $Repository -PassThru
    }
}

function Get-HVKeyChangeParams {
    # The engine params of a key-file change (Add-/Set-HVRepositoryKey): the repository with its
    # current password and the new one, both as plain text.
    [CmdletBinding()]
    [OutputType([hashtable])]
    param([string] $Repository, [System.Security.SecureString] $Password, [System.Security.SecureString] $NewPassword)
    @{ repository = $Repository; password = (ConvertFrom-HVSecureString $Password); newPassword = (ConvertFrom-HVSecureString $NewPassword) }
}
