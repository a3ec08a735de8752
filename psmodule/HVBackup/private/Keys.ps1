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
