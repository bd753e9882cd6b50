from lxml import etree

assert etree.LIBXSLT_VERSION >= (1, 1, 35), etree.LIBXSLT_VERSION
doc = etree.XML("<r><i>b</i><i>a</i></r>")
sort = etree.XSLT(etree.XML(
    '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"'
    ' xmlns:str="http://exslt.org/strings" extension-element-prefixes="str">'
    '<xsl:output method="text"/><xsl:template match="/r">'
    '<xsl:for-each select="i"><xsl:sort/><xsl:value-of select="str:padding(2, .)"/></xsl:for-each>'
    '</xsl:template></xsl:stylesheet>'))
assert str(sort(doc)) == "aabb", str(sort(doc))
