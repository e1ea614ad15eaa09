"""The directory the LDAP tests and bench/identity_timing.py bind against: people (ann, bob, a
locked account), a password policy that locks accounts, a service account that searches, a group."""

from tools.processes import Slapd

S = Slapd.SUFFIX
LDIF = f"""dn: {S}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,{S}
objectClass: organizationalUnit
ou: people

dn: ou=policies,{S}
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,{S}
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE

dn: uid=ann,ou=people,{S}
objectClass: inetOrgPerson
uid: ann
cn: Ann Example
sn: Example
mail: ann@example.org
userPassword: ann-password-1

dn: uid=bob,ou=people,{S}
objectClass: inetOrgPerson
uid: bob
cn: Bob Example
sn: Example
userPassword: bob-password-1

dn: uid=locked,ou=people,{S}
objectClass: inetOrgPerson
uid: locked
cn: Locked Out
sn: Out
userPassword: locked-password-1
pwdAccountLockedTime: 000001010000Z

dn: uid=finder,{S}
objectClass: account
objectClass: simpleSecurityObject
uid: finder
userPassword: finder-secret

dn: cn=messenger,{S}
objectClass: groupOfNames
cn: messenger
member: uid=ann,ou=people,{S}
"""
